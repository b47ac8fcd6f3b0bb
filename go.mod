module github.com/herdml/herd

go 1.26
