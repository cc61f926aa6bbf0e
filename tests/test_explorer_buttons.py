"""Inside Orthanc: the legacy Orthanc Explorer shows the plugin's buttons on study and series
pages ("De-identified download", "Review for release", "Route by rule…"), and the service
opens the review of a series' study for buttons on series pages."""
from __future__ import annotations

from orthanc_server import make_ct_study, wait_for


def test_orthanc_explorer_shows_the_gdpr_buttons_on_study_and_series_pages(orthanc_factory, browser):
    orthanc = orthanc_factory(gdpr={"WorkspaceUrl": "http://127.0.0.1:9", "DownloadProfiles": ["basic", "research"]})
    for data in make_ct_study(2, series=1):
        orthanc.upload(data)
    study = orthanc.get_json("/studies")[0]
    series = orthanc.get_json("/series")[0]
    script = orthanc.get("/plugins/explorer.js").text
    assert "Review for release" in script and '"downloadProfiles": ["basic", "research"]' in script
    base = orthanc.url.replace("http://", f"http://{orthanc.username}:{orthanc.password}@")
    for level, uuid in (("study", study), ("series", series)):
        browser.driver.get(f"{base}/app/explorer.html#{level}?uuid={uuid}")
        def shown() -> list[str] | None:  # jQuery Mobile enhances the buttons one by one: wait for all three
            texts = [b.text.strip() for b in browser.driver.find_elements(
                "css selector", f"a[id^='gdpr-{'studies' if level == 'study' else 'series'}-']")]
            return texts if len(texts) == 3 and all(texts) else None

        buttons = wait_for(shown, timeout=20, message=f"buttons on the {level} page")
        assert buttons == ["De-identified download", "Review for release", "Route by rule…"]
        browser.check(f"explorer-{level}", allow_problems=True)  # Orthanc's own page: its markup, not ours
