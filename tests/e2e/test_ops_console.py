"""The web console in a real Chromium: a user's grid and ticks, an operator's dead letters.

Screenshots of both views go to `.run/screenshots/` (git-ignored) for a person to look at.
Chromium is Debian's (`apt-get install chromium`), driven by Playwright's Python API; no
browser is downloaded.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from mandaact_common.mongo import Doc
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, progress_of

pytestmark = pytest.mark.e2e

OPERATOR = auth("platform", "console-e2e", roles=["operator"])

CHROMIUM = os.environ.get("MANDAACT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".run" / "screenshots"

GRID: dict[str, Any] = {
    "title": "Ship the console",
    "sub_goals": [
        {
            "position": p,
            "title": f"Area {p}",
            "actions": [
                {
                    "position": a,
                    "title": f"Step {p}.{a}",
                    "type": "routine",
                    "schedule": {"frequency": "daily"},
                }
                for a in (1, 2)
            ],
        }
        for p in (1, 5)
    ],
}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (see docs/ops.md)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def sign_in(
    browser: Any, ops: str, tenant: str, user: str, *, operator: bool
) -> tuple[Any, list[str]]:
    """A new page of the console, signed in with a dev token it minted; and its JS errors."""
    page = await browser.new_page(viewport={"width": 1280, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(ops)
    await page.fill("#dev-login input[name=tenant]", tenant)
    await page.fill("#dev-login input[name=user]", user)
    if operator:
        await page.check("#dev-login input[name=operator]")
    await page.click("#dev-login-submit")
    await page.wait_for_selector(f"#who:has-text('{user}')")
    return page, errors


async def test_a_user_sees_their_grid_ticks_an_action_and_watches_xp_grow(
    stack: Any, ops: str, browser: Any
) -> None:
    tenant, user = f"web-{uuid.uuid4().hex[:6]}", "wendy"
    headers = auth(tenant, user)
    async with httpx.AsyncClient(timeout=10) as http:
        action_ids = await create_grid_and_wait_for_checklist(http, stack, headers, GRID)
    page, errors = await sign_in(browser, ops, tenant, user, operator=False)

    grid = page.locator("#grid")
    await grid.locator(".cell.core").wait_for()
    assert await grid.locator(".cell").count() == 81
    assert await grid.locator(".cell.core").all_inner_texts() == ["Ship the console"]
    # Each sub-goal twice: around the core and at the centre of its own block.
    assert sorted(await grid.locator(".cell.sub").all_inner_texts()) == [
        "Area 1",
        "Area 1",
        "Area 5",
        "Area 5",
    ]
    # Sub-goal 1 sits top-left; its action 1 is the very first cell of the 9×9 grid.
    assert await grid.locator(".cell[data-row='0'][data-col='0']").inner_text() == "Step 1.1"
    assert (
        await grid.locator(".cell[data-row='4'][data-col='4']").inner_text() == "Ship the console"
    )

    await page.wait_for_selector(f"#checklist input[data-action='{action_ids[0]}']")
    assert await page.locator("#checklist li").count() == 4
    await page.wait_for_function("document.querySelector('#level').textContent !== '–'")
    before = int(await page.inner_text("#xp-total"))
    assert await page.inner_text("#checklist-counts") == "0 of 4 done"
    await page.check(f"#checklist input[data-action='{action_ids[0]}']")
    await page.wait_for_selector("#checklist-counts:has-text('1 of 4 done')")
    await page.wait_for_function(
        f"Number(document.querySelector('#xp-total').textContent) > {before}"
    )
    width = await page.eval_on_selector("#xp-fill", "e => e.style.width")
    assert width not in ("", "0%")
    assert await page.inner_text("#streak") == "1"
    async with httpx.AsyncClient(timeout=10) as http:
        progress = await progress_of(http, stack, headers)
    assert await page.inner_text("#xp-total") == str(progress["xp_total"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "console-user.png"), full_page=True)
    assert errors == []


async def test_an_operator_sees_a_poison_message_redrives_it_once_fixed_and_it_is_consumed(
    stack: Any, ops: str, browser: Any
) -> None:
    tenant, user = f"poison-{uuid.uuid4().hex[:6]}", "pat"
    headers = auth(tenant, user)
    async with httpx.AsyncClient(timeout=10) as http:
        action_ids = await create_grid_and_wait_for_checklist(http, stack, headers, GRID)

        async def gamification_lag() -> int:
            r = await http.get(f"{ops}/v1/ops/overview", headers=OPERATOR)
            return sum(g["lag"] for g in r.json()["groups"] if g["group"] == "gamification")

        await eventually(gamification_lag, lambda lag: lag == 0, 60)  # the grid is applied
        before = (await progress_of(http, stack, headers))["xp_total"]
    # The cause: the gamification database refuses this tenant's progress documents (as a
    # schema validator deployed by mistake would), so its check-in can never be applied.
    client: AsyncMongoClient[Doc] = AsyncMongoClient(stack.infra.mongodb_url)
    db = client[stack.database("gamification")]
    await db.command({"collMod": "user_state", "validator": {"tenant_id": {"$ne": tenant}}})
    try:
        page, errors = await sign_in(browser, ops, "platform", "oscar", operator=True)
        await page.wait_for_selector("#lag tbody tr[data-group='gamification']")
        await page.click("#tail-start")
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.put(
                f"{stack.url('checkins')}/v1/checkins/{action_ids[0]}", headers=headers
            )
            assert r.status_code == 201, r.text
        row = page.locator("#dead-letters tbody tr", has_text=f"{tenant}:{user}")
        await row.first.wait_for(timeout=60_000)
        assert await row.count() == 1
        assert "gamification" in await row.inner_text()
        assert "action.completed" in await row.inner_text()
        await page.wait_for_selector(f"#events li:has-text('{tenant}')")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "console-operator.png"), full_page=True)

        await db.command({"collMod": "user_state", "validator": {}})  # the cause is fixed
        await row.locator("input[type=checkbox]").check()
        await page.click("#redrive")
        await page.wait_for_selector("#dlt-status:has-text('redriven: 1')")
        await row.first.wait_for(state="detached", timeout=10_000)
        async with httpx.AsyncClient(timeout=10) as http:
            progress = await eventually(
                lambda: progress_of(http, stack, headers), lambda p: p["xp_total"] > before, 30
            )
            ledger = await http.get(f"{stack.url('gamification')}/v1/me/xp-ledger", headers=headers)
        assert [e["action_id"] for e in ledger.json()["items"] if e["reason"] == "checkin"] == [
            action_ids[0]
        ]
        assert progress["xp_total"] > before
        await page.screenshot(
            path=str(SCREENSHOTS / "console-operator-redriven.png"), full_page=True
        )
        assert errors == []
    finally:
        await db.command({"collMod": "user_state", "validator": {}})
        await client.close()
