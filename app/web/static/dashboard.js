// open-swe dashboard: live updates of the runs list and of a run page, by polling the JSON API.
// Every text from the server is untrusted (issue titles, plans, test output): it is only ever
// set with textContent, never parsed as HTML, and links are used only if they are http(s).
"use strict";

(function () {
  var RUNS_EVERY = 3000;
  var RUN_EVERY = 2000;

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    return node;
  }

  function webLink(url, text) {
    var a = el("a", text);
    if (typeof url === "string" && /^https?:\/\//.test(url)) a.href = url;
    return a;
  }

  function poll(url, every, apply) {
    var stopped = false;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) { stopped = true; return null; }
          return response.ok ? response.json() : null;
        })
        .then(function (data) { if (data && apply(data) === false) stopped = true; })
        .catch(function () { /* a missed update is retried at the next tick */ })
        .then(function () { if (!stopped) window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }

  // The runs list ----------------------------------------------------------------------

  function runRow(run) {
    var tr = el("tr", null, { "data-run": run.id });
    var short = run.id.slice(0, 8);
    var first = el("td");
    var details = el("a", short, { "aria-label": "Run " + short + ": details" });
    details.href = "/runs/" + encodeURIComponent(run.id);
    first.appendChild(details);
    tr.appendChild(first);

    var repo = el("td");
    var repoLink = el("a", run.repo);
    repoLink.href = "/repos/" + run.repo.split("/").map(encodeURIComponent).join("/");
    repo.appendChild(repoLink);
    tr.appendChild(repo);

    var thread = el("td");
    var kind = run.kind === "pull" ? "PR" : "Issue";
    thread.appendChild(webLink(run.issue_url, kind + " #" + run.number));
    if (run.pr_url) {
      thread.appendChild(document.createTextNode(" → "));
      thread.appendChild(webLink(run.pr_url, "PR #" + run.pr_number));
    }
    if (run.title) thread.appendChild(el("span", run.title, { class: "title" }));
    tr.appendChild(thread);

    tr.appendChild(el("td", run.trigger + " by @" + run.requested_by));
    var status = el("td");
    status.appendChild(el("span", run.display.status, { class: "status status-" + run.status }));
    tr.appendChild(status);
    tr.appendChild(el("td", run.display.started));
    tr.appendChild(el("td", run.display.duration));
    tr.appendChild(el("td", run.display.tokens, { class: "num" }));
    tr.appendChild(el("td", run.display.cost, { class: "num" }));
    return tr;
  }

  function liveRuns(table) {
    var body = table.tBodies[0];
    var count = document.getElementById("runs-count");
    var empty = document.getElementById("runs-empty");
    poll(table.getAttribute("data-src"), RUNS_EVERY, function (data) {
      var rows = document.createDocumentFragment();
      data.runs.forEach(function (run) { rows.appendChild(runRow(run)); });
      body.replaceChildren(rows);
      var n = data.runs.length;
      var text = n + (n === 1 ? " run" : " runs");
      if (count && count.textContent !== text) count.textContent = text;
      if (empty) empty.hidden = n > 0;
    });
  }

  // A run page ------------------------------------------------------------------------

  function field(root, name) { return root.querySelector('[data-field="' + name + '"]'); }

  function setText(node, text) {
    if (node && node.textContent !== String(text)) node.textContent = String(text);
  }

  function liveRun(section) {
    var page = document.getElementById("main");
    var finishedTicks = 0;
    poll(section.getAttribute("data-src"), RUN_EVERY, function (run) {
      var status = field(section, "status");
      status.className = "status status-" + run.status;
      setText(status, run.display.status);
      setText(field(section, "duration"), run.display.duration);
      setText(field(section, "tokens"), run.display.tokens);
      setText(field(section, "cost"), run.display.cost);

      var pr = field(section, "pr");
      pr.hidden = !run.pr_url;
      if (run.pr_url) {
        var link = field(section, "pr-link");
        if (/^https?:\/\//.test(run.pr_url)) link.href = run.pr_url;
        setText(link, "Pull request #" + run.pr_number);
      }
      var branch = field(section, "branch");
      branch.hidden = !run.branch_url;
      if (run.branch_url) {
        if (/^https?:\/\//.test(run.branch_url)) field(section, "branch-link").href = run.branch_url;
        setText(field(section, "branch-name"), run.branch);
      }
      field(section, "error-label").hidden = !run.error;
      field(section, "error").hidden = !run.error;
      setText(field(section, "error"), run.error || "");

      var anyAction = false;
      page.querySelectorAll("form[data-action]").forEach(function (form) {
        var allowed = run.actions.indexOf(form.getAttribute("data-action")) >= 0;
        form.hidden = !allowed;
        anyAction = anyAction || allowed;
      });
      field(page, "no-actions").hidden = anyAction;

      var steps = document.createDocumentFragment();
      run.steps.forEach(function (step) {
        var li = el("li", step.label, { class: "step step-" + step.state, "data-step": step.name });
        li.appendChild(el("span", " (" + step.state + ")", { class: "step-state" }));
        steps.appendChild(li);
      });
      field(page, "steps").replaceChildren(steps);

      setText(field(page, "plan-title"), run.plan ? run.plan.title : "No plan yet.");
      var planSteps = document.createDocumentFragment();
      (run.plan ? run.plan.steps : []).forEach(function (step) { planSteps.appendChild(el("li", step)); });
      field(page, "plan-steps").replaceChildren(planSteps);
      field(page, "approved").hidden = !run.approved;
      setText(field(page, "approved"), run.approved || "");

      var tests = run.tests;
      var summary = field(page, "tests-summary");
      summary.replaceChildren();
      if (!tests) {
        summary.textContent = "Not run yet.";
      } else if (!tests.command) {
        summary.textContent = "No test command was found, so no tests were run.";
      } else {
        summary.appendChild(el("code", tests.command));
        summary.appendChild(document.createTextNode(
          " " + (tests.passed ? "passed" : "failed") + " (exit code " + tests.exit_code +
          ", attempt " + tests.attempts + ")"));
      }
      var output = field(page, "tests-output");
      output.hidden = !(tests && tests.output);
      setText(output, tests ? tests.output : "");

      // A finished run changes no more: a few more looks (its last checkpoint), then stop.
      var active = ["queued", "running", "waiting", "faulted", "suspended"].indexOf(run.status) >= 0;
      finishedTicks = active ? 0 : finishedTicks + 1;
      return finishedTicks < 5;
    });
  }

  // A run's transcript: every stored event, then each new one as it is stored, from the
  // server-sent events of /api/runs/{id}/stream (the browser resumes from the last id itself).

  var STEP_NAMES = {
    prepare: "Prepare", plan: "Plan", approval: "Approval", implement: "Implement",
    verify: "Verify", publish: "Publish", report: "Report"
  };

  // One line for a command: the agent's `cd <repo> || exit 1` prefix and git's hardening
  // options (`-c key=value`) left out; the whole command is in its details.
  function firstLine(text) {
    var lines = String(text || "").split("\n").filter(function (l) { return l.trim(); });
    if (lines.length > 1 && /^cd .* \|\| exit 1$/.test(lines[0])) lines.shift();
    var line = (lines[0] || "").replace(/(\s-c\s+[\w.]+=\S*)+/g, "") + (lines.length > 1 ? " …" : "");
    return line.length > 160 ? line.slice(0, 157) + "…" : line;
  }

  function money(value) { return "$" + Number(value || 0).toFixed(4); }

  function describe(event) {
    var d = event.data || {};
    switch (event.kind) {
      case "status": return "Status: " + d.status + (d.by ? " (by @" + d.by + ")" : "") + (d.reason ? ": " + d.reason : "");
      case "step": return (STEP_NAMES[d.step] || d.step) + ": " + (d.detail || "done");
      case "decision": return d.verb + " by @" + d.by + (d.reason ? ": " + d.reason : "");
      case "model": return d.model + ": " + d.input_tokens + " tokens in, " + d.output_tokens + " out, ~" + money(d.cost_usd) +
        (d.tool_calls && d.tool_calls.length ? " → " + d.tool_calls.join(", ") : "");
      case "tool": return d.name + (d.args && d.args.file_path ? " " + d.args.file_path : "") + (d.status === "error" ? " (error)" : "");
      case "command": return "$ " + firstLine(d.command) + " → exit " + d.exit_code + (d.timed_out ? " (timed out)" : "") + " in " + d.seconds + "s";
      case "tests": return (d.command || "no test command") + ": " + (d.passed ? "passed" : "failed") + " (exit " + d.exit_code + ", attempt " + d.attempt + ")";
      case "sandbox": return (d.created ? "Sandbox created in " : "Sandbox reused in ") + d.seconds + "s";
      case "push": return "Pushed " + d.branch + " at " + String(d.commit || "").slice(0, 12);
      case "github": return "GitHub: " + d.action + (d.number ? " (#" + d.number + ")" : "");
      default: return event.kind;
    }
  }

  function detailOf(event) {
    var d = event.data || {};
    if (event.kind === "command" || event.kind === "tests") {
      return (event.kind === "command" ? "$ " + d.command + "\n\n" : "") + (d.output || "(no output)");
    }
    if (event.kind === "tool") {
      return JSON.stringify(d.args, null, 2) + (d.result ? "\n\n" + d.result : "");
    }
    return null;
  }

  function eventItem(event) {
    var d = event.data || {};
    var failed = (event.kind === "command" && d.exit_code !== 0) || (event.kind === "tests" && !d.passed) ||
      (event.kind === "status" && d.status === "failed");
    var li = el("li", null, { class: "event event-" + event.kind + (failed ? " event-failed" : ""), "data-event": String(event.id), "data-kind": event.kind });
    var at = new Date(event.at);
    li.appendChild(el("time", isNaN(at) ? "" : at.toLocaleTimeString(), { class: "event-time", datetime: String(event.at) }));
    li.appendChild(el("span", event.kind, { class: "event-kind" }));
    var text = el("span", describe(event), { class: "event-text" });
    if (event.kind === "github" && typeof d.url === "string" && /^https?:\/\//.test(d.url)) {
      text = webLink(d.url, describe(event));
      text.className = "event-text";
    }
    li.appendChild(text);
    var more = detailOf(event);
    if (more !== null) {
      var details = el("details");
      details.appendChild(el("summary", event.kind === "tool" ? "Arguments and result" : "Output"));
      details.appendChild(el("pre", more));
      li.appendChild(details);
    }
    return li;
  }

  function liveTranscript(list) {
    var state = field(document, "transcript-state");
    if (typeof window.EventSource !== "function") {
      setText(state, "This browser cannot show the transcript live.");
      return;
    }
    var source = new window.EventSource(list.getAttribute("data-stream"));
    var seen = 0;
    setText(state, "Live: new events appear as they happen.");
    source.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event.id <= seen) return;  // already shown (a reconnection sent it again)
      seen = event.id;
      list.appendChild(eventItem(event));
      setText(state, "Live: " + seen + (seen === 1 ? " event" : " events") + " so far.");
    };
    source.addEventListener("end", function () {
      source.close();
      setText(state, "The run has ended: " + seen + (seen === 1 ? " event." : " events."));
    });
    source.onerror = function () {
      if (source.readyState === window.EventSource.CLOSED) setText(state, "The transcript stopped updating; reload the page.");
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var transcript = document.querySelector('[data-live="transcript"]');
    if (transcript) liveTranscript(transcript);
    var runs = document.querySelector('[data-live="runs"]');
    if (runs) liveRuns(runs);
    var run = document.querySelector('[data-live="run"]');
    if (run) liveRun(run);
  });
})();
