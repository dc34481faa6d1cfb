package release

// Remote is what HeadObject says of an object already at a file's key.
type Remote struct {
	Size      int64
	SHA256    string // the sha256 metadata a release stored, "" if none
	CRC64NVME string // the full-object checksum, "" if the server keeps none
}

// Action is what a run does with one file.
type Action int

const (
	Send    Action = iota // nothing at the key: send it
	Skip                  // the object there is this file, complete
	Replace               // something else is at the key: send over it
)

// decide is the resume decision: an object is taken as complete only when
// its size and its sha256 metadata equal the file's, and its CRC64NVME
// too where the server keeps one (the metadata alone could be written by
// anyone; the checksum is of the bytes stored).
func decide(local Sums, remote *Remote) (Action, string) {
	switch {
	case remote == nil:
		return Send, ""
	case remote.Size != local.Size:
		return Replace, "a different size is there"
	case remote.SHA256 == "":
		return Replace, "the object there has no sha256 metadata"
	case remote.SHA256 != local.SHA256:
		return Replace, "a different sha256 is there"
	case remote.CRC64NVME != "" && remote.CRC64NVME != local.CRC64NVME:
		return Replace, "the object's CRC64NVME differs from the file's"
	}
	return Skip, "already complete (same size and sha256)"
}
