package controller

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// successor names the live candidate of g that takes its Lease first once prev
// leaves it (see election.Config.Successor): the others give it a head start
// instead of all racing for it. Every instance computes the same answer from the
// same presence Leases, and each group picks its own (rendezvous hashing), so a
// stopped instance's groups spread evenly over the others.
func (p *presence) successor(g *v1alpha1.LeaderGroup, prev string, now time.Time) string {
	var ids []string
	for _, c := range p.candidates(g, now) {
		ids = append(ids, c.Identity)
	}
	return rendezvous(g.Namespace+"/"+g.Name, prev, ids)
}

// rendezvous picks, among ids but prev, the one whose hash with key is highest
// ("" when there is none).
func rendezvous(key, prev string, ids []string) string {
	best, bestScore := "", uint64(0)
	for _, id := range ids {
		if id == prev {
			continue
		}
		// A hash that mixes every byte into every bit: FNV's, for keys that differ
		// in their last bytes only, picked one identity for half the groups.
		sum := sha256.Sum256([]byte(key + "\x00" + id))
		if s := binary.BigEndian.Uint64(sum[:8]); best == "" || s > bestScore {
			best, bestScore = id, s
		}
	}
	return best
}
