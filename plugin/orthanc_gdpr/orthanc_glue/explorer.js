/* orthanc-gdpr buttons in the legacy Orthanc Explorer (jQuery Mobile 1.1), on study and series
 * pages: "De-identified download" (profile choice), "Review for release" (opens the staff
 * workspace) and "Route by rule...". ORTHANC_GDPR is set by the plugin just before this code:
 * {"downloadProfiles": [...], "defaultProfile": "...", "rules": [{"name", "profile", "review"}],
 *  "workspace": "https://..."}. Nothing here sees or sends a patient value. */
(function () {
  var cfg = window.ORTHANC_GDPR || {downloadProfiles: [], rules: [], workspace: ''};

  function choose(question, options, fallback) {
    var answer = window.prompt(question + '\n\nOne of: ' + options.join(', '), fallback || options[0] || '');
    if (answer === null) { return null; }
    answer = answer.replace(/^\s+|\s+$/g, '');
    if (options.indexOf(answer) < 0) {
      window.alert('"' + answer + '" is not one of: ' + options.join(', '));
      return null;
    }
    return answer;
  }

  function ruleNames() {
    return $.map(cfg.rules, function (r) { return r.name; });
  }

  function button(text, icon, id) {
    return $('<a>').attr('data-role', 'button').attr('href', '#').attr('data-icon', icon)
      .attr('data-theme', 'e').attr('id', id).text(text);
  }

  function install(page, level, anchor) {
    $(page).live('pagebeforecreate', function () {
      var where = $(anchor).parent().parent();
      var download = button('De-identified download', 'arrow-d', 'gdpr-' + level + '-download');
      var review = button('Review for release', 'search', 'gdpr-' + level + '-review');
      var route = button('Route by rule\u2026', 'forward', 'gdpr-' + level + '-route');
      download.insertBefore(where);
      review.insertBefore(where);
      route.insertBefore(where);

      download.click(function () {
        var profile = choose('De-identify with which profile?', cfg.downloadProfiles, cfg.defaultProfile);
        if (profile && $.mobile.pageData) {
          window.location.href = '../gdpr/' + level + '/' + $.mobile.pageData.uuid +
            '/archive?profile=' + encodeURIComponent(profile);
        }
        return false;
      });

      review.click(function () {
        if (!cfg.workspace) { window.alert('No staff workspace is configured (Gdpr.WorkspaceUrl).'); return false; }
        var reviewed = $.grep(cfg.rules, function (r) { return r.review === 'required'; });
        var profiles = $.unique($.map(reviewed.length ? reviewed : cfg.rules, function (r) { return r.profile; }));
        var profile = profiles.length === 1 ? profiles[0] :
          choose('Review with which profile?', profiles.length ? profiles : cfg.downloadProfiles, cfg.defaultProfile);
        if (profile && $.mobile.pageData) {
          window.open(cfg.workspace + '/ui/' + level + '/' + encodeURIComponent($.mobile.pageData.uuid) +
                      '/review?profile=' + encodeURIComponent(profile), '_blank', 'noopener');
        }
        return false;
      });

      route.click(function () {
        var rule = choose('Route by which rule?', ruleNames());
        if (rule && $.mobile.pageData) {
          $.ajax({url: '../gdpr/route', type: 'POST', dataType: 'json', contentType: 'application/json',
                  data: JSON.stringify({level: level === 'studies' ? 'study' : 'series',
                                        id: $.mobile.pageData.uuid, rule: rule}),
                  success: function (job) { window.alert('Queued as job ' + job.id + ' (' + job.status + ').'); },
                  error: function (xhr) { window.alert('Not queued: ' + xhr.status + ' ' + xhr.responseText); }});
        }
        return false;
      });
    });
  }

  install('#study', 'studies', '#study-delete');
  install('#series', 'series', '#series-delete');
}());
