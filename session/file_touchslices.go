package session

// bbolt writes every page a transaction changes to a new place, and the
// old page is free only once the commit is done and no read still sees
// it. A group commit of touches to sessions all over the file (a burst
// of requests after a quiet hour) rewrites most of the sessions' pages
// at once, and the file grows by as much to hold both copies, for good.
// So touches are committed at most maxTouchesPerCommit at a time: each
// commit reuses the pages the ones before it freed. The writes waiting
// in the queue come after the slices, so that a read after them sees
// every touch answered before it (see view).
var maxTouchesPerCommit = 256

// sliceOfTouches takes up to maxTouchesPerCommit touches out of touches.
func sliceOfTouches(touches map[string]fileTouch) map[string]fileTouch {
	out := make(map[string]fileTouch, maxTouchesPerCommit)
	for id, t := range touches {
		if len(out) == maxTouchesPerCommit {
			break
		}
		out[id] = t
		delete(touches, id)
	}
	return out
}
