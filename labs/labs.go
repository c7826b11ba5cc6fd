// Package labs links every lesson into a binary.
package labs

import (
	_ "github.com/containers-underneath/lab/labs/bridgenat"
	_ "github.com/containers-underneath/lab/labs/cgroupcpu"
	_ "github.com/containers-underneath/lab/labs/chrootjail"
	_ "github.com/containers-underneath/lab/labs/macvlan"
	_ "github.com/containers-underneath/lab/labs/netnsveth"
	_ "github.com/containers-underneath/lab/labs/overlaymount"
)
