// The tiny programs of the real node's images (hack/node/images.sh): the pod
// sandbox's pause process and the probe server the real-node e2e runs.
// Standard library only, so they build offline and statically.
module modelops.io/hack/node/images

go 1.26.0
