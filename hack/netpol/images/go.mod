// The NetworkPolicy e2e's test program (hack/netpol/images.sh). Standard
// library only, so it builds offline and statically.
module modelops.io/hack/netpol/images

go 1.26.0
