// Passkeys (WebAuthn) for the gateway's pages: the buttons marked
// data-passkey="login" (sign-in, step-up, the second step after a
// password), data-passkey="register" (the passkeys page) and
// data-passkey="invite" (the invitation page). JSON goes to and from
// {endpoints}/passkeys/…; the server keeps each ceremony's state.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return; // no WebAuthn: the buttons stay hidden, the forms work
  }

  function toBytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toText(buf) {
    if (!buf) { return null; }
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function ids(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: toBytes(c.id) };
      if (c.transports) { d.transports = c.transports; }
      return d;
    });
  }

  function post(url, csrf, body, token) {
    var headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" };
    if (token) { headers["X-Invite-Token"] = token; } // in a header: never in an address or a log line
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: headers,
      body: body
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error(data.message || "Something went wrong (" + res.status + "). Try again.");
          err.location = data.location;
          throw err;
        }
        return data;
      });
    });
  }

  function show(button, err) {
    if (err && err.location) {
      window.location.assign(err.location);
      return;
    }
    var box = document.querySelector("[data-passkey-error]");
    var msg = err && err.name === "NotAllowedError" ? "The passkey was not used (cancelled or timed out)." : (err && err.message) || "The passkey did not work.";
    if (box) {
      box.textContent = msg;
      box.hidden = false;
    }
    button.disabled = false;
  }

  function login(button) {
    var ep = button.dataset.endpoints, csrf = button.dataset.csrf;
    var q = "?next=" + encodeURIComponent(button.dataset.next || "/");
    if (button.dataset.stepUp) { q += "&step_up=1"; }
    if (button.dataset.pending) { q += "&pending=" + encodeURIComponent(button.dataset.pending); }
    var kind = button.dataset.pending ? "second" : "login";
    return post(ep + "/passkeys/" + kind + "/begin" + q, csrf, "{}").then(function (opts) {
      var pk = opts.publicKey;
      pk.challenge = toBytes(pk.challenge);
      pk.allowCredentials = ids(pk.allowCredentials);
      return navigator.credentials.get({ publicKey: pk });
    }).then(function (cred) {
      var r = cred.response;
      return post(ep + "/passkeys/" + kind + "/finish" + q, csrf, JSON.stringify({
        id: cred.id, rawId: toText(cred.rawId), type: cred.type,
        authenticatorAttachment: cred.authenticatorAttachment || undefined,
        clientExtensionResults: cred.getClientExtensionResults(),
        response: {
          clientDataJSON: toText(r.clientDataJSON), authenticatorData: toText(r.authenticatorData),
          signature: toText(r.signature), userHandle: toText(r.userHandle)
        }
      }));
    }).then(function (done) {
      window.location.assign(done.location || "/");
    });
  }

  // register adds a passkey: to the signed-in account (the passkeys
  // page, then reloaded), or to an invitation's (data-token; the answer
  // says where to go, signed in).
  function register(button) {
    var ep = button.dataset.endpoints, csrf = button.dataset.csrf, token = button.dataset.token;
    var kind = token ? "invite" : "register";
    return post(ep + "/passkeys/" + kind + "/begin", csrf, "{}", token).then(function (opts) {
      var pk = opts.publicKey;
      pk.challenge = toBytes(pk.challenge);
      pk.user.id = toBytes(pk.user.id);
      pk.excludeCredentials = ids(pk.excludeCredentials);
      return navigator.credentials.create({ publicKey: pk });
    }).then(function (cred) {
      var r = cred.response;
      return post(ep + "/passkeys/" + kind + "/finish", csrf, JSON.stringify({
        id: cred.id, rawId: toText(cred.rawId), type: cred.type,
        authenticatorAttachment: cred.authenticatorAttachment || undefined,
        clientExtensionResults: cred.getClientExtensionResults(),
        response: {
          clientDataJSON: toText(r.clientDataJSON), attestationObject: toText(r.attestationObject),
          transports: r.getTransports ? r.getTransports() : []
        }
      }), token);
    }).then(function (done) {
      if (token) {
        window.location.assign(done.location || "/");
      } else {
        window.location.reload();
      }
    });
  }

  var actions = { login: login, register: register, invite: register };
  document.querySelectorAll("[data-passkey-hint]").forEach(function (hint) { hint.hidden = false; });
  document.querySelectorAll("button[data-passkey]").forEach(function (button) {
    var act = actions[button.dataset.passkey];
    if (!act) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      act(button).catch(function (err) { show(button, err); });
    });
  });
})();
