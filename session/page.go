package session

import (
	"strconv"
	"strings"
)

// PageByActivity returns the page of ss (sorted by SortByActivity) that
// follows the position after (empty: the first), at most limit long, and
// the position of the next page (empty when there is none). A position is
// the last session's activity and id, so a session that signs in or is
// touched meanwhile does not shift the pages.
func PageByActivity(ss []*Session, after string, limit int) ([]*Session, string, error) {
	start := 0
	if after != "" {
		at, id, ok := strings.Cut(after, ":")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || !ValidID(id) {
			return nil, "", ErrBadCursor
		}
		for start < len(ss) {
			la := ms(ss[start].LastActiveAt)
			if la < n || (la == n && ss[start].ID < id) {
				break
			}
			start++
		}
	}
	end := min(start+limit, len(ss))
	if end == len(ss) {
		return ss[start:], "", nil
	}
	last := ss[end-1]
	return ss[start:end], strconv.FormatInt(ms(last.LastActiveAt), 10) + ":" + last.ID, nil
}
