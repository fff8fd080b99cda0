module github.com/omniflow-go/omniflow

go 1.26
