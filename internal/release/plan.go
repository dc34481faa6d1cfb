package release

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ManifestName is the object a release writes last, beside its files.
const ManifestName = "airlock-manifest.json"

// File is one local file of a release and the key it goes to, relative
// to the target's prefix ("/"-separated).
type File struct {
	Local string
	Key   string
	Size  int64
}

// NameCheck applies the gateway's file-name policy to a "/"-rooted path;
// the TRE side refuses what it refuses, so the desktop refuses it first.
type NameCheck func(path string) error

// Plan turns FILE|DIR… into the files of a release: a file goes under its
// own name, a directory's contents under their paths inside it (as
// `aws s3 cp --recursive` and `rclone copy` place them). Every name is
// checked before anything is sent: one unsafe name refuses the release,
// naming the file.
func Plan(args []string, check NameCheck) ([]File, error) {
	if len(args) == 0 {
		return nil, errors.New("nothing to release: name at least one FILE or DIR")
	}
	var files []File
	from := make(map[string]string) // key → the local path that claimed it
	add := func(local, key string, size int64) error {
		if err := checkKey(key, check); err != nil {
			return fmt.Errorf("%s: %w", local, err)
		}
		if prev, dup := from[key]; dup {
			return fmt.Errorf("%s and %s would both be released as %q", prev, local, key)
		}
		from[key] = local
		files = append(files, File{Local: local, Key: key, Size: size})
		return nil
	}
	for _, arg := range args {
		fi, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		switch {
		case fi.Mode().IsRegular():
			err = add(arg, filepath.Base(arg), fi.Size())
		case fi.IsDir():
			err = walkDir(arg, add)
		default:
			err = fmt.Errorf("%s: not a regular file or a directory", arg)
		}
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Key < files[j].Key })
	return files, nil
}

// walkDir adds every regular file under root. Symbolic links and special
// files inside are refused rather than followed or left out silently.
func walkDir(root string, add func(local, key string, size int64) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: a symbolic link or special file; release the file it names instead", p)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		return add(p, filepath.ToSlash(rel), fi.Size())
	})
}

// checkKey refuses a key the gateway would refuse, and the manifest's own
// name at the top, which a file must not take.
func checkKey(key string, check NameCheck) error {
	for _, el := range strings.Split(key, "/") {
		if el == ".." || el == "." || el == "" {
			return fmt.Errorf("unsafe name %q", key)
		}
		for _, r := range el {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("unsafe name %q: contains control character %U", key, r)
			}
		}
	}
	if key == ManifestName {
		return fmt.Errorf("%q is the name of the release's manifest", key)
	}
	if check != nil {
		return check("/" + key)
	}
	return nil
}
