#!/usr/bin/env python3
"""The console in a real browser: Debian's headless Chromium driven by Selenium, against a real
gateway and real consoles that tests/e2e/browser.rs starts (it passes their login links and what
to expect in a JSON file, argv[1]).

A privacy officer logs in by the link, searches the subject by BSN and finds exactly its
disclosures, opens one and sees its markers and "proof verified", follows it to the covenant
version that decided, downloads the CSV (the Rust side compares it with the API's), prints the
art. 15 letter (print media and a PDF), sees the overview and the log's health; a post without
the CSRF token, a cross-site post and a foreign Host are refused. The author of a draft sees its
validation errors and is refused approval; a second administrator simulates, approves and
activates it. On every page: axe-core (no serious or critical violations), nothing loaded from
another origin, no Content-Security-Policy violation; a screenshot of each page under `out`.
"""

import base64
import json
import pathlib
import sys
import tempfile
import time
import traceback
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

CFG = json.loads(pathlib.Path(sys.argv[1]).read_text())
OUT = pathlib.Path(CFG["out"])
OUT.mkdir(parents=True, exist_ok=True)
AXE = pathlib.Path(CFG["axe"]).read_text()
FINDINGS = {}
FAILURES = []


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = CFG["chromium"]
    for a in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='console-browser-')}",
        # A foreign name for the console's address: the DNS-rebinding case.
        "--host-resolver-rules=MAP evil.example 127.0.0.1",
    ]:
        o.add_argument(a)
    o.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(OUT),
            "download.prompt_for_download": False,
            # No network here: a download must not wait for a Safe Browsing verdict.
            "safebrowsing.enabled": False,
        },
    )
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=o, service=Service(executable_path=CFG["chromedriver"]))
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    d.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(OUT)}
    )
    return d


def fail(what):
    print(f"FAIL: {what}", flush=True)
    FAILURES.append(what)


def expect(cond, what):
    if not cond:
        fail(what)
    return cond


def shot(d, name):
    png = d.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )["data"]
    (OUT / f"{name}.png").write_bytes(base64.b64decode(png))


def check(d, name):
    """axe-core, same-origin loads, CSP, and a screenshot of the page now shown."""
    d.execute_script(AXE)
    res = d.execute_async_script(
        """const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))
          .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"""
    )
    FINDINGS[name] = res
    for v in res:
        if v["impact"] in ("serious", "critical"):
            fail(f"{name}: axe {v['impact']} {v['id']}: {v['help']} at {v['nodes']}")
    foreign = d.execute_script(
        """const o = location.origin;
        const loaded = performance.getEntriesByType('resource').map(e => e.name);
        const linked = [...document.querySelectorAll('[src],[href],[action],[formaction]')]
          .map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('action') || e.getAttribute('formaction'));
        return loaded.concat(linked).filter(u => new URL(u, location.href).origin !== o);"""
    )
    expect(not foreign, f"{name}: loads or links another origin: {foreign}")
    for entry in d.get_log("browser"):
        msg = entry.get("message", "")
        expect(
            "Content Security Policy" not in msg and "Refused to" not in msg,
            f"{name}: the browser reported {msg}",
        )
    shot(d, name)


def title(d):
    return d.find_element(By.TAG_NAME, "h1").text


def button(d, text):
    for b in d.find_elements(By.TAG_NAME, "button"):
        if b.text.strip() == text:
            return b
    raise AssertionError(f"no button {text!r} on {d.current_url}")


def click(d, element):
    """Clicks and waits for the next page: the old one gone, the new one loaded."""
    element.click()

    def gone(_):
        try:
            element.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(d, 15).until(gone)
    WebDriverWait(d, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def origin_of(link):
    u = urllib.parse.urlsplit(link)
    return f"{u.scheme}://{u.netloc}"


def officer():
    d = browser()
    base = origin_of(CFG["officer_login"])
    try:
        d.get(CFG["officer_login"])
        expect(title(d) == "Zoeken in het logboek", f"logged in: {title(d)}")
        expect("Uw zoekopdrachten worden gelogd" in d.page_source, "says searches are logged")
        check(d, "01-zoeken")

        # The CSV of a search, downloaded.
        d.find_element(By.ID, "kind").send_keys("disclosure")
        csv = OUT / "logboek.csv"
        csv.unlink(missing_ok=True)
        button(d, "Download als CSV").click()
        for _ in range(300):
            if csv.exists() and csv.stat().st_size > 0:
                break
            time.sleep(0.1)
        expect(csv.exists(), "the CSV was downloaded")

        d.get(base + "/")

        # By BSN: exactly the subject's disclosures; the BSN not shown back, not in the URL.
        d.find_element(By.ID, "bsn").send_keys(CFG["bsn"])
        d.find_element(By.ID, "kind").send_keys("disclosure")
        click(d, button(d, "Zoeken"))
        expect(title(d) == "Zoekresultaat", f"results: {title(d)}")
        seqs = [int(a.text) for a in d.find_elements(By.CSS_SELECTOR, "a[href^='/entry/']")]
        expect(seqs == CFG["disclosures"], f"the subject's disclosures {CFG['disclosures']}, found {seqs}")
        expect(CFG["bsn"] not in d.page_source and CFG["bsn"] not in d.current_url, "BSN not shown back")
        check(d, "02-zoekresultaat")

        # One answered entry: its markers, and its proof verified by the console.
        click(d, d.find_element(By.CSS_SELECTOR, f"a[href='/entry/{CFG['answered'][-1]}']"))
        text = d.find_element(By.TAG_NAME, "main").text
        expect("Bewijs van opname geverifieerd door deze console" in text, "proof verified")
        headers = [th.text for th in d.find_elements(By.CSS_SELECTOR, "thead th")]
        expect(
            all(h in headers for h in ["Verstrekt", "Bewerkt", "Achtergehouden", "Weggelaten"]),
            f"per product the markers: {headers}",
        )
        withheld = [
            r.find_elements(By.TAG_NAME, "td")[3].text
            for r in d.find_elements(By.CSS_SELECTOR, "tbody tr")
            if len(r.find_elements(By.TAG_NAME, "td")) >= 5
        ]
        expect(any("(" in w for w in withheld), f"a withheld field with its rule: {withheld}")
        check(d, "03-logregel")

        # The version that decided: its text and approval.
        click(d, d.find_element(By.CSS_SELECTOR, "a[href^='/policy/version/']"))
        expect(title(d).startswith("Concept "), f"the version's draft: {title(d)}")
        expect("[[rule]]" in d.find_element(By.CSS_SELECTOR, "pre.source").text, "its text")
        check(d, "04-convenantversie")

        # The art. 15 letter: printable (no navigation or forms in print), and as PDF.
        d.get(base + "/report")
        check(d, "05-inzageverzoek")
        d.find_element(By.ID, "bsn").send_keys(CFG["bsn"])
        click(d, button(d, "Overzicht maken"))
        expect(title(d) == "Overzicht van verstrekkingen (AVG art. 15)", f"letter: {title(d)}")
        sections = len(d.find_elements(By.CSS_SELECTOR, "main section"))
        expect(sections == len(CFG["answered"]), f"one section per disclosure: {sections}")
        expect(CFG["bsn"] not in d.page_source, "BSN not in the letter")
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        hidden = d.execute_script(
            "return [...document.querySelectorAll('nav, form')].every(e => getComputedStyle(e).display === 'none')"
        )
        expect(hidden, "print leaves out navigation and forms")
        pdf = d.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})["data"]
        (OUT / "inzage-art15.pdf").write_bytes(base64.b64decode(pdf))
        expect((OUT / "inzage-art15.pdf").read_bytes()[:4] == b"%PDF", "a PDF")
        shot(d, "06-inzage-brief-print")
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        check(d, "06-inzage-brief")

        d.get(base + "/overview")
        expect(len(d.find_elements(By.CSS_SELECTOR, ".chart svg")) >= 2, "charts")
        expect(len(d.find_elements(By.CSS_SELECTOR, "section table")) >= 2, "tables beside them")
        check(d, "07-overzicht")

        d.get(base + "/log")
        d.get(base + "/log")
        text = d.find_element(By.TAG_NAME, "main").text
        expect("ondertekend met de logsleutel" in text, "checkpoint verified")
        expect("consistentiebewijs geverifieerd" in text, "consistent since the previous visit")
        check(d, "08-staat-logboek")

        d.get(base + "/policy")
        expect(title(d) == "Convenantbeheer", f"policy: {title(d)}")
        check(d, "09-convenantbeheer")

        # A form without its CSRF token: refused, nothing done.
        d.get(base + "/")
        d.execute_script("document.querySelector('main input[name=csrf]').remove()")
        d.find_element(By.ID, "bsn").send_keys(CFG["bsn"])
        click(d, button(d, "Zoeken"))
        expect(title(d) == "Geweigerd", f"no CSRF token: {title(d)}")
        # A cross-site post: the session cookie does not travel, nor is there a token.
        form = (
            f"<!doctype html><html lang=en><title>x</title><form method=post action='{base}/search'>"
            f"<input name=bsn value={CFG['bsn']}><button id=go>go</button></form>"
        )
        d.get("data:text/html;base64," + base64.b64encode(form.encode()).decode())
        click(d, d.find_element(By.ID, "go"))
        expect(title(d) in ("Inloggen", "Geweigerd"), f"cross-site post: {title(d)}")
        # Another host name for the console's address (DNS rebinding).
        port = urllib.parse.urlsplit(base).port
        d.get(f"http://evil.example:{port}/")
        expect("does not answer to that host name" in d.page_source, "foreign Host refused")

        d.get(base + "/")
        click(d, button(d, "Uitloggen"))
        expect(title(d) == "Uitgelogd", f"logged out: {title(d)}")
        d.get(base + "/")
        expect(title(d) == "Inloggen", "the session is gone")
        check(d, "10-uitgelogd")
    finally:
        d.quit()


def set_text(d, text, element="source"):
    d.execute_script("document.getElementById(arguments[1]).value = arguments[0]", text, element)


def author():
    d = browser()
    base = origin_of(CFG["author_login"])
    try:
        d.get(CFG["author_login"])
        d.get(base + "/policy/new")
        expect("[[rule]]" in d.find_element(By.ID, "source").get_attribute("value"), "prefilled")
        check(d, "11-nieuw-concept")
        set_text(d, pathlib.Path(CFG["broken_file"]).read_text())
        click(d, button(d, "Indienen als concept"))
        errors = [li.text for li in d.find_elements(By.CSS_SELECTOR, "#errors li")]
        expect(errors and ":" in errors[0] and "shred" in " ".join(errors), f"errors with line:column: {errors}")
        check(d, "12-concept-fouten")
        set_text(d, pathlib.Path(CFG["draft_file"]).read_text())
        click(d, button(d, "Indienen als concept"))
        expect(title(d).startswith("Concept "), f"the draft: {title(d)}")
        approve = button(d, "Goedkeuren")
        expect(not approve.is_enabled(), "the author's approve button is disabled")
        expect("U bent de auteur" in d.find_element(By.ID, "four-eyes").text, "and says why")
        check(d, "13-concept-auteur")
        return urllib.parse.urlsplit(d.current_url).path
    finally:
        d.quit()


def second(draft_path):
    d = browser()
    base = origin_of(CFG["second_login"])
    try:
        d.get(CFG["second_login"])
        d.get(base + draft_path)
        check(d, "14-concept-tweede-beheerder")
        click(d, button(d, "Simuleren"))
        expect("Statisch verschil" in d.page_source, "the simulation")
        expect(CFG["field"] in d.page_source, "names the field that changes")
        check(d, "15-simulatie")
        d.get(base + draft_path)
        click(d, button(d, "Goedkeuren"))
        expect("goedgekeurd" in d.find_element(By.TAG_NAME, "main").text, "approved")
        # The change touches the GGD's data: the GGD's signed approval, pasted as it came.
        set_text(d, pathlib.Path(CFG["ggd_note_file"]).read_text(), "note")
        click(d, button(d, "Handtekening toevoegen"))
        expect(title(d).startswith("Concept "), f"back on the draft after signing: {title(d)}")
        click(d, button(d, "Activeren"))
        expect("actief" in d.find_element(By.TAG_NAME, "main").text, "active")
        check(d, "16-geactiveerd")
        d.get(base + "/policy")
        draft_id = draft_path.rsplit("/", 1)[-1]
        active = d.find_elements(By.CSS_SELECTOR, "table")[0].text
        expect(draft_id in d.find_elements(By.CSS_SELECTOR, "table a")[0].get_attribute("href"),
               f"the draft is the active version: {active}")
        check(d, "17-convenantbeheer-na-activering")
    finally:
        d.quit()


def main():
    steps = [officer, author]
    path = None
    for step in steps:
        try:
            r = step()
            if step is author:
                path = r
        except Exception as e:  # noqa: BLE001 - every step reports, the run fails at the end
            traceback.print_exc()
            fail(f"{step.__name__}: {type(e).__name__}: {e}")
    if path:
        try:
            second(path)
        except Exception as e:  # noqa: BLE001
            fail(f"second: {type(e).__name__}: {e}")
    (OUT / "axe.json").write_text(json.dumps(FINDINGS, indent=2))
    shots = sorted(p.name for p in OUT.glob("*.png"))
    print(json.dumps({"screenshots": shots, "failures": FAILURES}), flush=True)
    sys.exit(1 if FAILURES else 0)


main()
