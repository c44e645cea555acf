package session

// DropUserIndex loses user's index of sessions in the memory store, as
// Redis does when it evicts the key, for the conformance suite.
func DropUserIndex(m *Memory, user string) {
	m.mu.Lock()
	delete(m.users, user)
	m.mu.Unlock()
}
