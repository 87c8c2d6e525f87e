"""The re-survey page in a real headless browser (Debian's chromium through Selenium), against the
real server process: open the link a customer got, pick a score, write a comment, send, see thanks.

Skipped with the reason when chromium, chromedriver or selenium is missing on a developer's machine;
under CI (`CI` set), where `.ci/run` installs them, a missing browser is a failure instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cxbot.brand import contrast
from cxbot.config import Config
from cxbot.models import Case, Feedback, OutboxMessage, Resurvey
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY, ROOT
from tests.support.a11y import problems
from tests.support.clock import FrozenClock
from tests.support.resurvey import ADA, LINK, MANAGER, SECRET, link_tokens, negative_case, say, with_contact
from tests.support.server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return (
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[test]')"
    return None


#: Text whose colours a customer must be able to read, as CSS selectors.
TEXT_PARTS = (
    "header .company",
    "h1",
    "p.hint",
    "legend",
    ".choice label",
    ".ends span",
    "label.comment",
    "button[type=submit]",
    "footer p",
    "footer a",
)
_COLOURS = """
const [selectors] = arguments;
const seen = [];
function backdrop(el) {
  for (; el; el = el.parentElement) {
    const bg = getComputedStyle(el).backgroundColor;
    if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
  }
  return 'rgb(255, 255, 255)';
}
for (const selector of selectors) {
  for (const el of document.querySelectorAll(selector)) {
    if (!el.textContent.trim()) continue;
    seen.push([selector, el.textContent.trim().slice(0, 20), getComputedStyle(el).color, backdrop(el)]);
  }
}
return seen;
"""


def _hex(css: str) -> str:
    red, green, blue = (int(float(v)) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return f"#{red:02x}{green:02x}{blue:02x}"


def low_contrast(browser: Any) -> list[str]:
    """Every text part of the page below WCAG AA (4.5:1) against the background it is drawn on."""
    found, measured = [], set()
    for selector, text, colour, background in browser.execute_script(_COLOURS, list(TEXT_PARTS)):
        measured.add(selector)
        ratio = contrast(_hex(colour), _hex(background))
        if ratio < 4.5:
            found.append(f"{selector} {text!r}: {colour} on {background} is {ratio:.2f}:1")
    assert measured == set(TEXT_PARTS), set(TEXT_PARTS) - measured  # every part was on the page
    return found


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless chromium the size of a phone, driven by the system chromedriver (never downloaded)."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0}}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`python bot.py serve` on loopback over the test's database, with the same signing secret."""
    env = {
        "DATABASE_URL": database_url,
        "CXBOT_CONFIG": str(ROOT / "cxbot.example.yaml"),
        "CXBOT_SECRET_KEY": SECRET,
        "CXBOT_API_KEY": API_KEY,
        "SLACK_BOT_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_APP_TOKEN": "",
        "CXBOT_CWD": str(tmp_path),  # no stray .env is read
    }
    with ServerProcess(env) as process:
        yield process


@pytest.fixture
async def live_runtime(
    database_url: str, server: ServerProcess, example_config: Config
) -> AsyncIterator[Runtime]:
    """This process's view of the same database, on today's clock (the server runs on real time)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=API_KEY,
        CXBOT_SECRET_KEY=SECRET,
        CXBOT_PUBLIC_URL=server.url,
    )
    built = Runtime.build(
        settings=settings, config=with_contact(example_config), clock=FrozenClock(datetime.now(UTC))
    )
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


async def test_a_customer_answers_the_resurvey_in_a_real_browser(
    browser: Any, live_runtime: Runtime, server: ServerProcess, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    runtime = live_runtime
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cxbot.test", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        case_id = await negative_case(http, customer=ADA, metric="csat", score=1)
    assert (await say(runtime, f"ack CX-{case_id}", user=MANAGER)).ok
    assert (await say(runtime, f"resurvey CX-{case_id}")).ok
    [token] = await link_tokens(runtime)

    async with runtime.sessions() as session:
        [body] = (
            await session.execute(
                select(OutboxMessage.payload["body"].as_string()).where(OutboxMessage.kind == "contact")
            )
        ).scalars()
    match = LINK.search(body)
    assert match is not None
    link = match.group(0)
    assert link == f"{server.url}/r/{token}"

    browser.get(link)
    # Who is asking, before anything else: cxbot.example.yaml's brand, in the title, header and footer.
    assert browser.title == "One question about your experience · Northwind Outfitters"
    header = browser.find_element(By.TAG_NAME, "header")
    assert header.text == "Northwind Outfitters"
    logo = header.find_element(By.TAG_NAME, "img")
    assert logo.get_attribute("alt") == "Northwind Outfitters logo"
    assert browser.execute_script("return arguments[0].naturalWidth", logo) > 0  # the data URI drew
    footer = browser.find_element(By.TAG_NAME, "footer")
    assert "Questions? Call 0800 123 4567" in footer.text
    privacy = footer.find_element(By.LINK_TEXT, "Privacy policy")
    assert privacy.get_attribute("href") == "https://www.northwind.example.com/privacy"
    legend = browser.find_element(By.TAG_NAME, "legend").text
    assert legend == "How satisfied are you with your experience with Phone support?"
    assert problems(browser.page_source) == []
    assert low_contrast(browser) == []  # the brand's orange, at the colours the browser computed
    radios = browser.find_elements(By.CSS_SELECTOR, "input[type=radio][name=score]")
    assert [r.get_attribute("value") for r in radios] == ["1", "2", "3", "4", "5"]
    # A person taps the big label, as on a phone; the hidden radio it names gets selected.
    target = browser.find_element(By.CSS_SELECTOR, "label[for=score-4]")
    assert target.size["height"] >= 44 and target.size["width"] >= 44  # a comfortable touch target
    target.click()
    assert browser.find_element(By.ID, "score-4").is_selected()
    assert low_contrast(browser) == []  # the chosen score, drawn in the accent
    comment = browser.find_element(By.ID, "comment")
    comment.send_keys("Much better after the call-back, thank you")
    browser.save_screenshot(str(tmp_path / "resurvey-form.png"))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 20).until(expected_conditions.title_is("Thank you · Northwind Outfitters"))
    assert "We have your answer" in browser.find_element(By.TAG_NAME, "main").text

    async with runtime.sessions() as session:
        case = await session.get(Case, case_id)
        resurvey = (await session.execute(select(Resurvey))).scalar_one()
        answer = await session.get(Feedback, resurvey.feedback_id)
    assert (case.state, case.recovery_outcome) == ("closed", "recovered")
    assert case.closed_at is not None and resurvey.answered_at is not None
    assert (answer.source, answer.metric, answer.score, answer.comment) == (
        "resurvey",
        "csat",
        4.0,
        "Much better after the call-back, thank you",
    )

    # The same link again, in the same browser: the friendly "already answered" page.
    browser.get(link)
    assert browser.title == "You have already answered · Northwind Outfitters"
