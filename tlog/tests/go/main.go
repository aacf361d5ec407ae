// Command tlogref answers requests with Go's reference implementations,
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, for
// hermetic-tlog's interoperability test (tlog/tests/go_interop.rs).
//
// It reads one JSON array of requests on standard input and writes one JSON
// array of answers, in order, on standard output. It is built offline from
// Debian's golang-golang-x-mod-dev source (GOPATH=/usr/share/gocode,
// GO111MODULE=off).
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type request struct {
	Op    string   `json:"op"`
	Name  string   `json:"name"`
	Text  string   `json:"text"`
	Note  string   `json:"note"`
	Skeys []string `json:"skeys"`
	Vkeys []string `json:"vkeys"`
	Pub   string   `json:"pub"`

	// tree: leaves are Leaf(i) for i < Leaves.
	Leaves int64 `json:"leaves"`
	// Leave the stored hashes and roots out of the answer.
	NoDump bool `json:"no_dump"`
	// All inclusion and consistency proofs for trees up to this size.
	AllProofsUpTo int64 `json:"all_proofs_up_to"`
	// More (tree size, index or old size) pairs.
	RecordPairs [][2]int64 `json:"record_pairs"`
	TreePairs   [][2]int64 `json:"tree_pairs"`
	// Stored hash index arithmetic up to this index or size.
	IndexUpTo int64 `json:"index_up_to"`
	// Tiles of this height published when growing between these sizes
	// (tlog.NewTiles), with their data (tlog.ReadTileData).
	TileHeight int        `json:"tile_height"`
	TileSizes  [][2]int64 `json:"tile_sizes"`

	// parse_tree / tile_path
	Path string `json:"path"`

	// verify_log: a served log checked as a client would. Tiles maps C2SP
	// tlog-tiles paths (tile/L/N..., tile/entries/N...) to base64 data;
	// Proof is a C2SP tlog-proof text.
	Tiles map[string]string `json:"tiles"`
	Proof string            `json:"proof"`
}

type sig struct {
	Name string `json:"name"`
	Hash uint32 `json:"hash"`
}

type proof struct {
	T     int64       `json:"t"`
	N     int64       `json:"n"`
	Proof []tlog.Hash `json:"proof"`
}

type tile struct {
	Old  int64  `json:"old"`
	Size int64  `json:"size"`
	Path string `json:"path"`
	// Base64 of the tile's hashes (tlog.ReadTileData).
	Data string `json:"data"`
}

type answer struct {
	Error string `json:"error,omitempty"`

	Skey string `json:"skey,omitempty"`
	Vkey string `json:"vkey,omitempty"`

	Note       string `json:"note,omitempty"`
	Text       string `json:"text,omitempty"`
	Verified   []sig  `json:"verified,omitempty"`
	Unverified []sig  `json:"unverified,omitempty"`

	Stored       []tlog.Hash `json:"stored,omitempty"`
	Roots        []tlog.Hash `json:"roots,omitempty"`
	RecordProofs []proof     `json:"record_proofs,omitempty"`
	TreeProofs   []proof     `json:"tree_proofs,omitempty"`
	Index        [][2]int64  `json:"index,omitempty"`
	Split        [][2]int64  `json:"split,omitempty"`
	Count        []int64     `json:"count,omitempty"`
	TreeNote     string      `json:"tree_note,omitempty"`
	Tiles        []tile      `json:"tiles,omitempty"`

	Size int64      `json:"size,omitempty"`
	Hash *tlog.Hash `json:"hash,omitempty"`

	Tile *tileCoord `json:"tile,omitempty"`
}

type tileCoord struct {
	H int   `json:"h"`
	L int   `json:"l"`
	N int64 `json:"n"`
	W int   `json:"w"`
}

// Leaf is the record data both sides use for leaf i.
func Leaf(i int64) []byte {
	return []byte(fmt.Sprintf("hermetic leaf %d\n", i))
}

type memory []tlog.Hash

func (m memory) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, errors.New("index out of range")
		}
		out[i] = m[x]
	}
	return out, nil
}

func run(r request) answer {
	switch r.Op {
	case "genkey":
		skey, vkey, err := note.GenerateKey(rand.Reader, r.Name)
		if err != nil {
			return answer{Error: err.Error()}
		}
		return answer{Skey: skey, Vkey: vkey}

	case "vkey_from_pub":
		pub, err := base64.StdEncoding.DecodeString(r.Pub)
		if err != nil {
			return answer{Error: err.Error()}
		}
		vkey, err := note.NewEd25519VerifierKey(r.Name, ed25519.PublicKey(pub))
		if err != nil {
			return answer{Error: err.Error()}
		}
		return answer{Vkey: vkey}

	case "sign":
		var signers []note.Signer
		for _, k := range r.Skeys {
			s, err := note.NewSigner(k)
			if err != nil {
				return answer{Error: err.Error()}
			}
			signers = append(signers, s)
		}
		msg, err := note.Sign(&note.Note{Text: r.Text}, signers...)
		if err != nil {
			return answer{Error: err.Error()}
		}
		return answer{Note: string(msg)}

	case "open":
		var verifiers []note.Verifier
		for _, k := range r.Vkeys {
			v, err := note.NewVerifier(k)
			if err != nil {
				return answer{Error: err.Error()}
			}
			verifiers = append(verifiers, v)
		}
		n, err := note.Open([]byte(r.Note), note.VerifierList(verifiers...))
		if err != nil {
			return answer{Error: err.Error()}
		}
		a := answer{Text: n.Text}
		for _, s := range n.Sigs {
			a.Verified = append(a.Verified, sig{s.Name, s.Hash})
		}
		for _, s := range n.UnverifiedSigs {
			a.Unverified = append(a.Unverified, sig{s.Name, s.Hash})
		}
		return a

	case "tree":
		return tree(r)

	case "parse_tree":
		t, err := tlog.ParseTree([]byte(r.Text))
		if err != nil {
			return answer{Error: err.Error()}
		}
		return answer{Size: t.N, Hash: &t.Hash}

	case "verify_log":
		return verifyLog(r)

	case "tile_path":
		t, err := tlog.ParseTilePath(r.Path)
		if err != nil {
			return answer{Error: err.Error()}
		}
		return answer{Note: t.Path(), Tile: &tileCoord{t.H, t.L, t.N, t.W}}
	}
	return answer{Error: "unknown op " + r.Op}
}

func tree(r request) answer {
	var a answer
	var stored memory
	for i := int64(0); i < r.Leaves; i++ {
		hashes, err := tlog.StoredHashes(i, Leaf(i), stored)
		if err != nil {
			return answer{Error: err.Error()}
		}
		stored = append(stored, hashes...)
	}
	if !r.NoDump {
		a.Stored = stored
	}
	roots := make([]tlog.Hash, 0, r.Leaves+1)
	for s := int64(0); s <= r.Leaves; s++ {
		h, err := tlog.TreeHash(s, stored)
		if err != nil {
			return answer{Error: err.Error()}
		}
		roots = append(roots, h)
	}
	if !r.NoDump {
		a.Roots = roots
	}
	recordPairs := append([][2]int64(nil), r.RecordPairs...)
	treePairs := append([][2]int64(nil), r.TreePairs...)
	for t := int64(1); t <= r.AllProofsUpTo; t++ {
		for n := int64(0); n < t; n++ {
			recordPairs = append(recordPairs, [2]int64{t, n})
			treePairs = append(treePairs, [2]int64{t, n + 1})
		}
	}
	for _, p := range recordPairs {
		rp, err := tlog.ProveRecord(p[0], p[1], stored)
		if err != nil {
			return answer{Error: err.Error()}
		}
		if err := tlog.CheckRecord(rp, p[0], roots[p[0]], p[1], tlog.RecordHash(Leaf(p[1]))); err != nil {
			return answer{Error: err.Error()}
		}
		a.RecordProofs = append(a.RecordProofs, proof{p[0], p[1], rp})
	}
	for _, p := range treePairs {
		tp, err := tlog.ProveTree(p[0], p[1], stored)
		if err != nil {
			return answer{Error: err.Error()}
		}
		if err := tlog.CheckTree(tp, p[0], roots[p[0]], p[1], roots[p[1]]); err != nil {
			return answer{Error: err.Error()}
		}
		a.TreeProofs = append(a.TreeProofs, proof{p[0], p[1], tp})
	}
	for x := int64(0); x <= r.IndexUpTo; x++ {
		level, n := tlog.SplitStoredHashIndex(x)
		a.Split = append(a.Split, [2]int64{int64(level), n})
		a.Count = append(a.Count, tlog.StoredHashCount(x))
		for level := 0; level < 8; level++ {
			a.Index = append(a.Index, [2]int64{int64(level), tlog.StoredHashIndex(level, x)})
		}
	}
	a.TreeNote = string(tlog.FormatTree(tlog.Tree{N: r.Leaves, Hash: roots[r.Leaves]}))
	for _, p := range r.TileSizes {
		for _, t := range tlog.NewTiles(r.TileHeight, p[0], p[1]) {
			data, err := tlog.ReadTileData(t, stored)
			if err != nil {
				return answer{Error: err.Error()}
			}
			a.Tiles = append(a.Tiles, tile{p[0], p[1], t.Path(), base64.StdEncoding.EncodeToString(data)})
		}
	}
	return a
}

// c2spTiles serves tiles of height 8 from C2SP paths: Go names them
// tile/8/L/N (and tile/8/data/N for entries), C2SP tlog-tiles drops the
// height (tile/L/N, tile/entries/N).
type c2spTiles map[string]string

func (c c2spTiles) Height() int { return 8 }

func (c c2spTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := "tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
		b64, ok := c[p]
		if !ok {
			return nil, fmt.Errorf("tile %s not served", p)
		}
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (c c2spTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// parseCheckpoint reads a C2SP checkpoint body: origin, size, root hash.
func parseCheckpoint(text string) (string, tlog.Tree, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 {
		return "", tlog.Tree{}, errors.New("short checkpoint")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return "", tlog.Tree{}, err
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return "", tlog.Tree{}, err
	}
	return lines[0], tlog.Tree{N: n, Hash: h}, nil
}

func verifyLog(r request) answer {
	v, err := note.NewVerifier(r.Vkeys[0])
	if err != nil {
		return answer{Error: err.Error()}
	}
	n, err := note.Open([]byte(r.Note), note.VerifierList(v))
	if err != nil {
		return answer{Error: "checkpoint: " + err.Error()}
	}
	origin, tree, err := parseCheckpoint(n.Text)
	if err != nil {
		return answer{Error: err.Error()}
	}
	if origin != v.Name() {
		return answer{Error: "origin is not the key name"}
	}
	tiles := c2spTiles(r.Tiles)
	reader := tlog.TileHashReader(tree, tiles)
	// The tiles hash up to the signed root (TileHashReader checks each
	// tile it reads against the tree).
	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil {
		return answer{Error: "tree hash: " + err.Error()}
	}
	if root != tree.Hash {
		return answer{Error: "tiles do not hash to the checkpoint root"}
	}
	// Every entry in the bundles is the leaf the tiles hold, proven.
	var leaves int64
	for i := int64(0); leaves < tree.N; i++ {
		w := tree.N - leaves
		if w > 256 {
			w = 256
		}
		p := fmt.Sprintf("tile/entries/%s", tileIndex(i))
		if w < 256 {
			p += fmt.Sprintf(".p/%d", w)
		}
		b64, ok := r.Tiles[p]
		if !ok {
			return answer{Error: "entry bundle " + p + " not served"}
		}
		bundle, _ := base64.StdEncoding.DecodeString(b64)
		for len(bundle) > 0 {
			if len(bundle) < 2 {
				return answer{Error: "truncated bundle " + p}
			}
			l := int(bundle[0])<<8 | int(bundle[1])
			if len(bundle) < 2+l {
				return answer{Error: "truncated bundle " + p}
			}
			entry := bundle[2 : 2+l]
			bundle = bundle[2+l:]
			rp, err := tlog.ProveRecord(tree.N, leaves, reader)
			if err != nil {
				return answer{Error: err.Error()}
			}
			if err := tlog.CheckRecord(rp, tree.N, tree.Hash, leaves, tlog.RecordHash(entry)); err != nil {
				return answer{Error: fmt.Sprintf("entry %d: %v", leaves, err)}
			}
			leaves++
		}
	}
	if leaves != tree.N {
		return answer{Error: "bundles hold the wrong number of entries"}
	}
	a := answer{Size: tree.N, Hash: &tree.Hash, Text: n.Text}
	if r.Proof != "" {
		idx, hashes, extra, cp, err := parseProof(r.Proof)
		if err != nil {
			return answer{Error: "proof: " + err.Error()}
		}
		pn, err := note.Open([]byte(cp), note.VerifierList(v))
		if err != nil {
			return answer{Error: "proof checkpoint: " + err.Error()}
		}
		_, ptree, err := parseCheckpoint(pn.Text)
		if err != nil {
			return answer{Error: err.Error()}
		}
		if err := tlog.CheckRecord(hashes, ptree.N, ptree.Hash, idx, tlog.RecordHash(extra)); err != nil {
			return answer{Error: "proof: " + err.Error()}
		}
		a.Note = string(extra)
	}
	return a
}

func tileIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

// parseProof reads a C2SP tlog-proof (c2sp.org/tlog-proof).
func parseProof(text string) (int64, tlog.RecordProof, []byte, string, error) {
	i := strings.Index(text, "\n\n")
	if i < 0 {
		return 0, nil, nil, "", errors.New("no blank line")
	}
	head, cp := strings.Split(text[:i], "\n"), text[i+2:]
	if head[0] != "c2sp.org/tlog-proof@v1" {
		return 0, nil, nil, "", errors.New("bad header")
	}
	head = head[1:]
	var extra []byte
	if len(head) > 0 && strings.HasPrefix(head[0], "extra ") {
		e, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(head[0], "extra "))
		if err != nil {
			return 0, nil, nil, "", err
		}
		extra, head = e, head[1:]
	}
	if len(head) == 0 || !strings.HasPrefix(head[0], "index ") {
		return 0, nil, nil, "", errors.New("no index")
	}
	idx, err := strconv.ParseInt(strings.TrimPrefix(head[0], "index "), 10, 64)
	if err != nil {
		return 0, nil, nil, "", err
	}
	var proof tlog.RecordProof
	for _, l := range head[1:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return 0, nil, nil, "", err
		}
		proof = append(proof, h)
	}
	return idx, proof, extra, cp, nil
}

func main() {
	var reqs []request
	if err := json.NewDecoder(os.Stdin).Decode(&reqs); err != nil {
		fmt.Fprintln(os.Stderr, "tlogref: reading requests:", err)
		os.Exit(2)
	}
	answers := make([]answer, len(reqs))
	for i, r := range reqs {
		answers[i] = run(r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(answers); err != nil {
		fmt.Fprintln(os.Stderr, "tlogref: writing answers:", err)
		os.Exit(2)
	}
}
