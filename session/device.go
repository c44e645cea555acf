package session

import (
	"crypto/sha1"
	"encoding/hex"
)

// DeviceDigest is what a store keeps of a device cookie's id: a one-way
// digest, so that a copy of the store holds no value a browser could
// present as a known device. The id is 128 random bits, so finding one
// that gives a stored digest is a preimage search; no key is needed, and
// a key kept with the store would add nothing against its copy.
//
// SHA-1 because Redis's Lua has it (redis.sha1hex): the create script
// then knows a device stored in clear before digests (legacyDevice) as
// the Go stores do. Preimages, the only attack here, are as hard on
// SHA-1 as they ever were. The digest is 40 hex digits, an id in clear
// 32, so the two never meet by chance.
func DeviceDigest(id string) string {
	if id == "" {
		return ""
	}
	sum := sha1.Sum([]byte(deviceDigestLabel + id))
	return hex.EncodeToString(sum[:])
}

const deviceDigestLabel = "session_auth device "

// sameDevice reports whether a device of the user's history is the
// device whose digest is digest: the digest itself, or the id in clear
// as stores kept it before they kept digests. Lua twin: same_device in
// luaPrelude (redis_scripts.go).
func sameDevice(stored, digest string) bool {
	return stored == digest || len(stored) == legacyDeviceLen && DeviceDigest(stored) == digest
}

// legacyDeviceLen is the length of a device id kept in clear.
const legacyDeviceLen = 32
