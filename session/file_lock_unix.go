//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package session

import (
	"os"
	"syscall"
	"time"
)

// lockFile takes the exclusive lock bbolt takes (flock), trying for up
// to wait.
func lockFile(fd *os.File, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return true
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func unlockFile(fd *os.File) { _ = syscall.Flock(int(fd.Fd()), syscall.LOCK_UN) }
