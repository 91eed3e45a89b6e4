package main

import "github.com/gokrazy/gokrazy"

func main() { _ = gokrazy.Boot }
