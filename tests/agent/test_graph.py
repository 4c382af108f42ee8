"""The workflow's shape, as LangGraph reads it from the nodes' signatures."""

from app.agent.graph import build_graph


def test_edges_read_from_the_node_signatures() -> None:
    drawn = build_graph().get_graph()
    edges = {(edge.source, edge.target) for edge in drawn.edges}
    assert edges == {
        ("__start__", "prepare"),
        ("prepare", "plan"),
        ("prepare", "implement"),  # a follow-up on a pull request: no plan
        ("plan", "approval"),
        ("approval", "plan"),  # revise
        ("approval", "implement"),  # approve (or auto-approved)
        ("approval", "report"),  # stop
        ("implement", "verify"),
        ("verify", "implement"),  # tests failing, attempts left; or the sandbox was lost
        ("verify", "publish"),
        ("publish", "report"),
        ("publish", "implement"),  # the sandbox was lost before publishing
        ("report", "__end__"),
    }


def test_input_schema_is_narrow() -> None:
    schema = build_graph().get_input_jsonschema()
    assert set(schema["properties"]) == {
        "thread_id",
        "run_id",
        "repo",
        "issue_number",
        "branch",
        "auto_approve",
        "kind",
    }
    assert "kind" not in schema.get("required", [])  # absent means an issue
