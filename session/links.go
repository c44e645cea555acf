package session

import (
	"encoding/json"
	"slices"
	"time"
)

// linkSet is one Links set as the memory and file stores keep it: each
// member with the time (Unix ms) it is kept until.
type linkSet map[string]int64

// add keeps member until at least until, then drops what has passed at
// now and, past maxLinks, the members that expire first.
func (l linkSet) add(member string, until, now time.Time) {
	if u := until.UnixMilli(); u > l[member] {
		l[member] = u
	}
	l.prune(now)
	for len(l) > maxLinks {
		oldest, at := "", int64(0)
		for m, u := range l {
			if oldest == "" || u < at || (u == at && m < oldest) {
				oldest, at = m, u
			}
		}
		delete(l, oldest)
	}
}

// prune drops the members whose time has passed at now.
func (l linkSet) prune(now time.Time) {
	for m, u := range l {
		if u <= now.UnixMilli() {
			delete(l, m)
		}
	}
}

// members lists the members still kept at now, sorted.
func (l linkSet) members(now time.Time) []string {
	out := []string{}
	for m, u := range l {
		if u > now.UnixMilli() {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// last is when the set's last member goes: the set can go with it.
func (l linkSet) last() int64 {
	var last int64
	for _, u := range l {
		last = max(last, u)
	}
	return last
}

func (l linkSet) encode() []byte {
	b, _ := json.Marshal(map[string]int64(l))
	return b
}

func decodeLinkSet(b []byte) linkSet {
	l := linkSet{}
	if b != nil {
		_ = json.Unmarshal(b, (*map[string]int64)(&l))
	}
	return l
}
