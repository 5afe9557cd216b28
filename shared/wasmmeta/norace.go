//go:build !race

package wasmmeta

const raceBuild = false
