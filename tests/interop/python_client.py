"""An independent MCP client (the official Python SDK) against immuta-mcp.

Driven by tests/interop_python.rs, which starts the server and reads what this
script prints. Usage:

    python_client.py stdio <immuta-mcp binary>
    python_client.py http <MCP URL> <bearer token>

It initializes, lists the tools, runs a query on each platform (the SDK
validates each structuredContent against the tool's outputSchema), and in
HTTP mode cancels a held call (after printing CANCEL_READY and reading one
line from stdin, so the driver can hold the next statement) and closes the
session. Every check that fails raises; the last line is `OK` on success.
Warnings the SDK logs (e.g. "Session termination failed") are failures too.
"""

import asyncio
import logging
import sys
from datetime import timedelta

from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

EXPECTED_TOOLS = {"query_snowflake", "query_databricks", "fetch_more", "list_tables", "describe_table", "whoami"}


class Collect(logging.Handler):
    """Keeps every warning or error the SDK logs."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


def check(condition, message):
    if not condition:
        raise AssertionError(message)


async def exercise(session: ClientSession, user: str):
    init = await session.initialize()
    check(init.serverInfo.name, "the server names itself")
    tools = await session.list_tools()
    names = {t.name for t in tools.tools}
    check(EXPECTED_TOOLS <= names, f"tools: {sorted(names)}")
    for tool in tools.tools:
        check(tool.outputSchema is not None, f"{tool.name} has an outputSchema")
    print(f"TOOLS {' '.join(sorted(names))}", flush=True)

    who = await session.call_tool("whoami", {})
    check(not who.isError, f"whoami: {who}")
    check(who.structuredContent["user"] == user, f"whoami says {who.structuredContent}")

    sf = await session.call_tool(
        "query_snowflake",
        {"sql": "SELECT ORDER_ID, EMAIL FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID", "max_rows": 3},
    )
    check(not sf.isError, f"query_snowflake: {sf.content}")
    rs = sf.structuredContent
    check(rs["row_count"] == 3 and rs["truncated"] is True, f"snowflake page: {rs}")
    check([c["name"] for c in rs["columns"]] == ["ORDER_ID", "EMAIL"], f"columns: {rs['columns']}")
    print(f"SNOWFLAKE rows={rs['row_count']} statement={rs['statement_id']}", flush=True)

    # The rest of the truncated result, without running the query again.
    cursor = rs.get("next_cursor")
    check(isinstance(cursor, str) and cursor, f"a truncated result carries next_cursor: {rs}")
    more = await session.call_tool("fetch_more", {"cursor": cursor, "max_rows": 100})
    check(not more.isError, f"fetch_more: {more.content}")
    page = more.structuredContent
    check(page["statement_id"] == rs["statement_id"], f"same statement: {page}")
    first_ids = [r[0] for r in rs["rows"]]
    next_ids = [r[0] for r in page["rows"]]
    check(next_ids and min(next_ids) > max(first_ids), f"the next rows follow: {first_ids} then {next_ids}")
    check(page.get("next_cursor") is None, f"the last page has no cursor: {page}")
    print(f"FETCH_MORE rows={page['row_count']}", flush=True)

    db = await session.call_tool(
        "query_databricks", {"sql": "SELECT order_id FROM main.sales.orders ORDER BY order_id"}
    )
    check(not db.isError, f"query_databricks: {db.content}")
    check(db.structuredContent["row_count"] > 0, f"databricks: {db.structuredContent}")
    print(f"DATABRICKS rows={db.structuredContent['row_count']}", flush=True)

    refused = await session.call_tool("query_snowflake", {"sql": "DELETE FROM SALES.PUBLIC.ORDERS"})
    check(refused.isError, "a write is a tool error")
    text = " ".join(c.text for c in refused.content if isinstance(c, types.TextContent))
    check("read-only" in text, f"refusal: {text}")


async def cancel_held_call(session: ClientSession):
    """Cancel a call whose statement the driver holds; the server must not answer it."""
    print("CANCEL_READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    request_id = session._request_id  # the id the next request gets
    call = asyncio.create_task(
        session.call_tool(
            "query_snowflake",
            {"sql": "SELECT COUNT(*) AS N FROM SALES.PUBLIC.ORDERS"},
            read_timeout_seconds=timedelta(seconds=4),
        )
    )
    await asyncio.sleep(1.0)
    await session.send_notification(
        types.ClientNotification(
            types.CancelledNotification(
                params=types.CancelledNotificationParams(requestId=request_id, reason="interop test")
            )
        )
    )
    try:
        result = await call
        raise AssertionError(f"a cancelled call was answered: {result}")
    except Exception as e:  # the SDK times the unanswered request out
        check("Timed out" in str(e) or "timed out" in str(e).lower(), f"unexpected end of the call: {e!r}")
    print("CANCELLED", flush=True)
    # The session still works after a cancellation.
    who = await session.call_tool("whoami", {})
    check(not who.isError, "whoami after the cancel")


async def main():
    collect = Collect()
    logging.getLogger().addHandler(collect)
    mode = sys.argv[1]
    if mode == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=["sandbox", "--user", "bob@example.com"])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session, "bob@example.com")
    elif mode == "http":
        url, token = sys.argv[2], sys.argv[3]
        async with streamablehttp_client(url, headers={"Authorization": f"Bearer {token}"}) as (read, write, session_id):
            async with ClientSession(read, write) as session:
                await exercise(session, "bob@example.com")
                check(session_id() is not None, "the server issued a session id")
                await cancel_held_call(session)
        # Leaving the transport sent DELETE for the session.
        print("CLOSED", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
    check(not collect.records, f"the SDK logged warnings: {collect.records}")
    print("OK", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
