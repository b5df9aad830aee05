module github.com/aios/registry-catalog/test/conformance

go 1.22
