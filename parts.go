package sessionauth

// wireParts builds the handler's parts from its config and what
// Provision set up (store, policy, logger, clock, metrics). A test that
// swaps one of those afterwards wires the parts again.
func wireParts(h *Handler) {
	if h.oidc == nil {
		h.oidc = &oidcSignIn{stateRing: &stateKeyring{}} // filled by wireOIDC, after the cache
	}
	h.notifier = newNotifier(h)
	h.tokens = newAPITokens(h)
	h.handoff = newHandOff(h)
	h.self = newSelfService(h)
	h.tokens.setSelf(h.self)
	h.forward = newForwardAuth(h)
	h.account = newAccountPages(h)
	h.routes = newEndpointRoutes(h.signIn, h.oidc, h.self, h.tokens, h.forward, h.account, h.logger)
	h.passkeys = newPasskeySignIn(h)
	h.passkeys.addRoutes(h.routes)
	newForgotPassword(h).addRoutes(h.routes)
}
