package vae

import "github.com/omniflow-go/omniflow/device"

func convPad1() device.ConvOptions { return device.ConvOptions{Padding: []int{1}} }

func causalTime() device.ConvOptions {
	return device.ConvOptions{Padding: []int{1, 0, 0}, Causal: true}
}
