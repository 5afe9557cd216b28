//go:build !race

package platformtest

const raceEnabled = false
