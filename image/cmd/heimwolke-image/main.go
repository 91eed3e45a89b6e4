package main

import (
	_ "github.com/diskfs/go-diskfs/filesystem/ext4"
	_ "github.com/google/uuid"
)

func main() {}
