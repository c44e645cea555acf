package sessionauth

// storesWithAccounts is distinctStores for the stored accounts: each
// store in use once, spoken for by the newest handler that keeps stored
// accounts in it (distinctStores' newest handler of a store may be a
// site without sign_in: the demo's hand-off site shares its file with the
// no-login site, and Caddy provisions them in no set order).
func storesWithAccounts() []storeRef {
	running.Lock()
	defer running.Unlock()
	seen := map[string]int{}
	var out []storeRef
	for _, h := range running.handlers {
		if h.SignIn == nil || !h.SignIn.Stored {
			continue
		}
		if i, ok := seen[h.storeKey]; ok {
			out[i].h = h
			continue
		}
		seen[h.storeKey] = len(out)
		out = append(out, storeRef{store: h.store, h: h})
	}
	return out
}
