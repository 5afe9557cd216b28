//go:build race

package wasmmeta_test

const raceEnabled = true
