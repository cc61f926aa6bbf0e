"""Reviewing a study before release: what the engine does to it, attribute by attribute and in
its pixels, as a person sees it in the staff workspace (``/ui/studies/...``) or as JSON.

- :mod:`.search` finds studies in Orthanc (``/tools/find``) and lists their series;
- :mod:`.engines` binds profiles to the plugin's key (``..._PLUGIN_KEY_FILE``);
- :mod:`.inspection` de-identifies single instances for review (cached for a few minutes);
- :mod:`.tags` turns an instance's before/after into table rows with action, rule and purpose;
- :mod:`.images` renders before/after frames with the masked boxes outlined;
- :mod:`.study_review` assembles the whole review (one function for the page and its JSON twin).

The service reads Orthanc over REST only; the engine runs here on the fetched files.
"""
