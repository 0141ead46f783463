package rmi

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// The model's attestation token has the shape of an Arm CCA token (DEN0137
// A7; the claim keys below): a CBOR tag-399 collection with a platform
// token and a realm token, each a COSE_Sign1 signed with ES384 by a P-384
// key. It is a MODEL token and says so: the platform's verification
// service claim reads ModelLabel, its one software component is named
// "cca-testbed rmi model", and both keys are derived from fixed labels in
// this file, so anyone can sign what the model signs. Nothing vouches for
// it, which is right.
//
// One departure keeps the token something the realm firmware can hand out
// without signing anything itself: the realm token's signature covers its
// claims with the challenge and the REMs as zeros. The firmware writes the
// real challenge and the current REMs into the model's token, and the
// bytes are then exactly those Model.Token returns for the same challenge
// and measurements. ParseToken checks signatures under that rule.

// ModelLabel is the platform token's verification service indicator.
const ModelLabel = "cca-testbed rmi model token: not signed by any hardware, verify nothing with it"

// PlatformProfile is the platform token's profile claim value.
const PlatformProfile = "tag:arm.com,2023:cca_platform#1.0.0"

// More claim keys (DEN0137 A7.2.3 platform claims; realm public key).
const (
	claimRAK             = 44237
	claimRAKHashAlgo     = 44240
	claimPlatformImplID  = 2396
	claimPlatformInstID  = 256
	claimPlatformConfig  = 2401
	claimPlatformLife    = 2395
	claimPlatformSWComps = 2399
	claimPlatformVerif   = 2400
	claimPlatformHash    = 2402
	swCompType           = 1
	swCompMeasurement    = 2
	swCompSignerID       = 5
)

// modelKey derives a P-384 key from a label: fixed, so tokens are
// deterministic and anyone can check (or forge) them.
func modelKey(label string) *ecdsa.PrivateKey {
	d := sha512.Sum384([]byte("cca-testbed model key: " + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), d[:])
	if err != nil {
		panic(fmt.Sprintf("model key %s: %v", label, err)) // the labels are constants
	}
	return k
}

var (
	keysOnce sync.Once
	iak, rak *ecdsa.PrivateKey
)

func modelKeys() (*ecdsa.PrivateKey, *ecdsa.PrivateKey) {
	keysOnce.Do(func() {
		iak = modelKey("platform attestation key (IAK)")
		rak = modelKey("realm attestation key (RAK)")
	})
	return iak, rak
}

// detSigner hides the concrete key type from go-cose so it signs through
// crypto.Signer, where a nil rand means RFC 6979 deterministic ECDSA.
type detSigner struct{ k *ecdsa.PrivateKey }

func (s detSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s detSigner) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	// go-cose passes no options; ES384 hashes with SHA-384.
	return s.k.Sign(nil, digest, crypto.SHA384)
}

var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// sign1 returns the COSE_Sign1 of payload, signed over signedPayload.
func sign1(k *ecdsa.PrivateKey, payload, signedPayload []byte) ([]byte, error) {
	signer, err := cose.NewSigner(cose.AlgorithmES384, detSigner{k})
	if err != nil {
		return nil, err
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmES384)
	msg.Payload = signedPayload
	if err := msg.Sign(nil, nil, signer); err != nil {
		return nil, err
	}
	msg.Payload = payload
	return msg.MarshalCBOR()
}

func rakPublic() ([]byte, error) {
	_, r := modelKeys()
	key, err := cose.NewKeyFromPublic(&r.PublicKey)
	if err != nil {
		return nil, err
	}
	return key.MarshalCBOR()
}

// realmClaims is the realm token's payload.
func (r *realmState) realmClaims(challenge []byte, rems [][]byte) ([]byte, error) {
	pub, err := rakPublic()
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(map[int]any{
		claimProfile:         RealmProfile,
		claimChallenge:       challenge,
		claimPersonalization: r.cfg.RPV[:],
		claimHashAlgo:        r.cfg.HashAlgo.String(),
		claimRIM:             r.meas[RIMIndex],
		claimREMs:            rems,
		claimRAK:             pub,
		claimRAKHashAlgo:     "sha-256",
	})
}

// buildToken encodes what the model attests to (see the top of this file).
func (r *realmState) buildToken(challenge [64]byte) []byte {
	b, err := r.encodeToken(challenge)
	if err != nil {
		// Only an encoder bug gets here; an empty token makes the
		// guest's report fail visibly rather than carry garbage.
		return nil
	}
	return b
}

func (r *realmState) encodeToken(challenge [64]byte) ([]byte, error) {
	iakKey, rakKey := modelKeys()
	zeros := make([][]byte, NumMeasurements-1)
	for i := range zeros {
		zeros[i] = make([]byte, len(r.meas[1+i]))
	}
	payload, err := r.realmClaims(challenge[:], r.meas[1:])
	if err != nil {
		return nil, err
	}
	signed, err := r.realmClaims(make([]byte, 64), zeros)
	if err != nil {
		return nil, err
	}
	realm, err := sign1(rakKey, payload, signed)
	if err != nil {
		return nil, err
	}
	platform, err := platformToken(iakKey)
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(cbor.Tag{Number: tokenTagCollection, Content: map[int][]byte{
		claimPlatformToken: platform,
		claimRealmToken:    realm,
	}})
}

// platformToken is the same for every realm: its challenge binds the RAK.
func platformToken(k *ecdsa.PrivateKey) ([]byte, error) {
	pub, err := rakPublic()
	if err != nil {
		return nil, err
	}
	bind := sha256.Sum256(pub)
	iakPub, err := k.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	inst := sha256.Sum256(iakPub)
	impl := sha256.Sum256([]byte("cca-testbed rmi model implementation"))
	fw := sha256.Sum256([]byte(rimSeed))
	payload, err := encMode.Marshal(map[int]any{
		claimProfile:         PlatformProfile,
		claimChallenge:       bind[:],
		claimPlatformImplID:  impl[:],
		claimPlatformInstID:  append([]byte{0x01}, inst[:]...),
		claimPlatformConfig:  []byte{0},
		claimPlatformLife:    0x3000, // secured
		claimPlatformSWComps: []map[int]any{{swCompType: "cca-testbed rmi model", swCompMeasurement: fw[:], swCompSignerID: impl[:]}},
		claimPlatformVerif:   ModelLabel,
		claimPlatformHash:    "sha-256",
	})
	if err != nil {
		return nil, err
	}
	return sign1(k, payload, payload)
}

// ErrToken is wrapped by every ParseToken error.
var ErrToken = errors.New("bad attestation token")

// Token is what ParseToken reads out of a CCA token.
type Token struct {
	Challenge       []byte
	RPV             []byte
	HashAlgo        string
	RIM             []byte
	REMs            [][]byte
	RealmProfile    string
	PlatformProfile string
	// VerificationService is the platform's verification service
	// indicator; ModelLabel for the model's tokens.
	VerificationService string
	// Model: both signatures check out with the model's keys (the realm
	// signature under the model's zeroed-challenge rule), and the
	// platform challenge binds the realm key.
	Model bool
}

// ParseToken decodes a CCA attestation token (a configfs-tsm outblob) and
// checks it was made by the model. Errors name what is malformed.
func ParseToken(b []byte) (*Token, error) {
	var tag cbor.Tag
	if err := cbor.Unmarshal(b, &tag); err != nil {
		return nil, fmt.Errorf("%w: not CBOR: %v", ErrToken, err)
	}
	if tag.Number != tokenTagCollection {
		return nil, fmt.Errorf("%w: CBOR tag %d, want %d (CCA token collection)", ErrToken, tag.Number, tokenTagCollection)
	}
	raw, err := cbor.Marshal(tag.Content)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrToken, err)
	}
	var coll map[int][]byte
	if err := cbor.Unmarshal(raw, &coll); err != nil {
		return nil, fmt.Errorf("%w: collection is not a map of byte strings: %v", ErrToken, err)
	}
	var realm, platform cose.Sign1Message
	if err := realm.UnmarshalCBOR(coll[claimRealmToken]); err != nil {
		return nil, fmt.Errorf("%w: realm token (key %d): %v", ErrToken, claimRealmToken, err)
	}
	if err := platform.UnmarshalCBOR(coll[claimPlatformToken]); err != nil {
		return nil, fmt.Errorf("%w: platform token (key %d): %v", ErrToken, claimPlatformToken, err)
	}
	var rc struct {
		Profile   string   `cbor:"265,keyasint"`
		Challenge []byte   `cbor:"10,keyasint"`
		RPV       []byte   `cbor:"44235,keyasint"`
		HashAlgo  string   `cbor:"44236,keyasint"`
		RAK       []byte   `cbor:"44237,keyasint"`
		RIM       []byte   `cbor:"44238,keyasint"`
		REMs      [][]byte `cbor:"44239,keyasint"`
	}
	if err := cbor.Unmarshal(realm.Payload, &rc); err != nil {
		return nil, fmt.Errorf("%w: realm claims: %v", ErrToken, err)
	}
	var pc struct {
		Profile   string `cbor:"265,keyasint"`
		Challenge []byte `cbor:"10,keyasint"`
		Verif     string `cbor:"2400,keyasint"`
	}
	if err := cbor.Unmarshal(platform.Payload, &pc); err != nil {
		return nil, fmt.Errorf("%w: platform claims: %v", ErrToken, err)
	}
	if len(rc.Challenge) != 64 || len(rc.REMs) != NumMeasurements-1 {
		return nil, fmt.Errorf("%w: realm claims: challenge of %d bytes, %d REMs; want 64 and %d", ErrToken, len(rc.Challenge), len(rc.REMs), NumMeasurements-1)
	}
	t := &Token{Challenge: rc.Challenge, RPV: rc.RPV, HashAlgo: rc.HashAlgo, RIM: rc.RIM, REMs: rc.REMs,
		RealmProfile: rc.Profile, PlatformProfile: pc.Profile, VerificationService: pc.Verif}
	t.Model = modelSigned(&realm, &platform, rc.RAK, pc.Challenge)
	return t, nil
}

// modelSigned checks the model's signatures and the RAK binding.
func modelSigned(realm, platform *cose.Sign1Message, rakCOSE, platformChallenge []byte) bool {
	iakKey, rakKey := modelKeys()
	want, err := rakPublic()
	if err != nil || !bytes.Equal(rakCOSE, want) {
		return false
	}
	if bind := sha256.Sum256(rakCOSE); !bytes.Equal(platformChallenge, bind[:]) {
		return false
	}
	pv, err := cose.NewVerifier(cose.AlgorithmES384, &iakKey.PublicKey)
	if err != nil || platform.Verify(nil, pv) != nil {
		return false
	}
	// The realm signature covers the claims with challenge and REMs zeroed.
	var claims map[int]any
	if err := cbor.Unmarshal(realm.Payload, &claims); err != nil {
		return false
	}
	claims[claimChallenge] = make([]byte, 64)
	rems, _ := claims[claimREMs].([]any)
	for i, r := range rems {
		if b, ok := r.([]byte); ok {
			rems[i] = make([]byte, len(b))
		}
	}
	zeroed, err := encMode.Marshal(claims)
	if err != nil {
		return false
	}
	rv, err := cose.NewVerifier(cose.AlgorithmES384, &rakKey.PublicKey)
	if err != nil {
		return false
	}
	check := *realm
	check.Payload = zeroed
	return check.Verify(nil, rv) == nil
}
