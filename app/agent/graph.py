"""The workflow: prepare -> plan -> approval -> implement <-> verify -> publish -> report.

Branches are typed on the nodes (`Command[Literal[...]]`), so the edges read from their
signatures: prepare goes to plan, or straight to implement for a follow-up on a pull
request; approval goes to plan (revise), implement, or report (stopped); verify goes back
to implement (tests failing, attempts left) or on to publish; verify and publish go back to
implement when the sandbox, and the work in it, was lost, and publish does when people sent
instructions after the agent had finished. Errors are not caught here: they end the graph run,
the checkpoint keeps the last completed step (a retry resumes there), and `execute_run`
reports the failure.
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from app.agent.context import RunContext
from app.agent.nodes.coding import implement, verify
from app.agent.nodes.delivery import publish, report
from app.agent.nodes.planning import approval, plan
from app.agent.nodes.prepare import prepare
from app.agent.state import RunInput, RunState

Graph = CompiledStateGraph[RunState, RunContext, RunInput, RunState]


def build_graph(checkpointer: BaseCheckpointSaver[str] | None = None) -> Graph:
    builder = StateGraph(RunState, context_schema=RunContext, input_schema=RunInput)
    builder.add_node("prepare", prepare)
    builder.add_node("plan", plan)
    builder.add_node("approval", approval)
    builder.add_node("implement", implement)
    builder.add_node("verify", verify)
    builder.add_node("publish", publish)
    builder.add_node("report", report)
    builder.add_edge(START, "prepare")
    builder.add_edge("plan", "approval")
    builder.add_edge("implement", "verify")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=checkpointer, name="open-swe")
