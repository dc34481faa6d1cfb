package policy

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/storage"
)

// The actions each party gets. Ingestion's are the onboarding guide's,
// plus what a delivery of a large file needs: it is a multipart upload,
// which under SSE-KMS takes kms:Decrypt to complete, and one cut short is
// aborted.
var (
	ingestionS3  = []string{"s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
	ingestionKMS = []string{"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"}
	// The mover verifies what it sent (GetObject), and multipart uploads
	// under SSE-KMS need kms:Decrypt.
	moverS3 = []string{"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"}
	// A route's mover reads its source prefix, and lists it to find the
	// objects and the flag.
	moverRead = []string{"s3:GetObject"}
	moverKMS  = []string{"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"}
	// Dataset users may write under their prefix of the export area, and
	// neither read nor list it.
	exportWrite = []string{"s3:PutObject", "s3:AbortMultipartUpload"}
	pullRead    = []string{"s3:GetObject", "s3:GetObjectVersion"}
	usersRW     = []string{"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
	list        = []string{"s3:ListBucket"}
	pullKMS     = []string{"kms:Decrypt", "kms:DescribeKey"}
	usersKMS    = []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"}
)

// Supplier returns the documents for a supplier's destination: the
// ingestion role's statements on its bucket prefix and KMS key, and the
// role's own policy to match.
func Supplier(p config.Policy, s *config.Supplier) (*Set, error) {
	set := &Set{Subject: "supplier " + s.Name, Documents: []Document{}}
	if err := need(p.IngestionRoleARN, "ingestion_role_arn"); err != nil {
		return nil, fmt.Errorf("%s: %w", set.Subject, err)
	}
	if err := set.writer(p, "AirlockIngestion", p.IngestionRoleARN, "destination", s.Destination, ingestionS3, ingestionKMS); err != nil {
		return nil, err
	}
	return set.finish()
}

// Dataset returns the documents of a dataset; exports is the push area
// (config.Config.Exports).
func Dataset(p config.Policy, d *config.Dataset, exports string) (*Set, error) {
	set := &Set{Subject: "dataset " + d.Name, Documents: []Document{}}
	var err error
	if d.Push() {
		err = set.push(p, d, exports)
	} else {
		err = set.pull(p, d)
	}
	if err != nil {
		return nil, err
	}
	return set.finish()
}

// push adds the write-only prefix of the users in the export area, and
// the mover role's statements on the target.
func (s *Set) push(p config.Policy, d *config.Dataset, exports string) error {
	if err := s.need(p.UserARNTemplate, "user_arn_template", p.MoverRoleARN, "mover_role_arn"); err != nil {
		return err
	}
	switch ex, ok, err := s.s3Bucket("exports", exports); {
	case err != nil:
		return err
	case ok:
		s.Documents = append(s.Documents, Document{Kind: BucketStatements, Target: ex.Name, Policy: Policy{Version: version, Statement: []Statement{
			allow("DatasetUsersWriteOnly", users(p, d), exportWrite, objectsARN(p, ex.Name, ex.Prefix+d.Name+"/")),
		}}})
	}
	return s.writer(p, "AirlockMover", p.MoverRoleARN, "bucket", d.Bucket, moverS3, moverKMS)
}

// pull adds the pull bucket's whole policy and, with a key, the key
// policy statements that let the same principals use it.
func (s *Set) pull(p config.Policy, d *config.Dataset) error {
	if err := s.need(p.UserARNTemplate, "user_arn_template"); err != nil {
		return err
	}
	bucket := config.BucketName(d.PullBucket)
	readers, writers := principals(d.PullARNs), users(p, d)
	everything := []string{bucketARN(p, bucket), objectsARN(p, bucket, "")}
	sts := []Statement{
		allow("PullRead", readers, pullRead, objectsARN(p, bucket, "")),
		allow("PullList", readers, list, bucketARN(p, bucket)),
		allow("UsersReadWrite", writers, usersRW, objectsARN(p, bucket, "")),
		allow("UsersList", writers, list, bucketARN(p, bucket)),
		deny("DenyInsecureTransport", everything, "Bool", "aws:SecureTransport", "false"),
	}
	if p.DenyTLSBelow != "" {
		sts = append(sts, deny("DenyOldTLS", everything, "NumericLessThan", "s3:TlsVersion", p.DenyTLSBelow))
	}
	s.Documents = append(s.Documents, Document{Kind: BucketPolicy, Target: bucket, Location: d.PullBucket, Policy: Policy{Version: version, Statement: sts}})
	if d.Bucket.KMSKey != "" {
		via, err := viaS3(p, d.Bucket.KMSKey)
		if err != nil {
			return err
		}
		s.Documents = append(s.Documents, Document{Kind: KeyStatements, Target: d.Bucket.KMSKey, Policy: Policy{Version: version, Statement: []Statement{
			withCondition(allow("PullDecrypt", readers, pullKMS, "*"), "StringEquals", "kms:ViaService", via),
			withCondition(allow("UsersEncryptDecrypt", writers, usersKMS, "*"), "StringEquals", "kms:ViaService", via),
		}}})
	}
	return nil
}

// writer adds what role needs to write to target (named what in notes):
// statements for the bucket's and the key's owners, and the role's policy.
func (s *Set) writer(p config.Policy, sid, role, what string, target config.Target, s3Actions, kmsActions []string) error {
	b, ok, err := s.s3Bucket(what, target.URL)
	if err != nil || !ok {
		return err
	}
	objects := objectsARN(p, b.Name, b.Prefix)
	s.Documents = append(s.Documents, Document{Kind: BucketStatements, Target: b.Name, Policy: Policy{Version: version, Statement: []Statement{
		allow(sid+"Write", principals([]string{role}), s3Actions, objects),
	}}})
	rolePolicy := []Statement{{Sid: sid + "Write", Effect: "Allow", Action: s3Actions, Resource: []string{objects}}}
	if target.KMSKey != "" {
		via, err := viaS3(p, target.KMSKey)
		if err != nil {
			return err
		}
		s.Documents = append(s.Documents, Document{Kind: KeyStatements, Target: target.KMSKey, Policy: Policy{Version: version, Statement: []Statement{
			withCondition(allow(sid+"Encrypt", principals([]string{role}), kmsActions, "*"), "StringEquals", "kms:ViaService", via),
		}}})
		rolePolicy = append(rolePolicy, Statement{Sid: sid + "Encrypt", Effect: "Allow", Action: kmsActions, Resource: []string{target.KMSKey}})
	}
	s.Documents = append(s.Documents, Document{Kind: RolePolicy, Target: role, Policy: Policy{Version: version, Statement: rolePolicy}})
	return nil
}

// s3Bucket reads location (what, for notes): ok is false, with a note,
// when it is not an S3 bucket, which takes no bucket policy.
func (s *Set) s3Bucket(what, location string) (storage.BucketRef, bool, error) {
	b, ok, err := storage.ParseBucket(location)
	switch {
	case err != nil:
		return b, false, fmt.Errorf("%s: %s: %w", s.Subject, what, err)
	case !ok:
		s.Notes = append(s.Notes, what+" is not in an object store: no bucket policy")
		return b, false, nil
	case b.Scheme != "s3":
		s.Notes = append(s.Notes, fmt.Sprintf("%s is a %s:// bucket: airlock writes only AWS policies", what, b.Scheme))
		return b, false, nil
	}
	return b, true, nil
}

// need reports the first of the (value, key) pairs whose value is empty.
func (s *Set) need(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := need(pairs[i], pairs[i+1]); err != nil {
			return fmt.Errorf("%s: %w", s.Subject, err)
		}
	}
	return nil
}

func allow(sid string, who *Principal, actions []string, resources ...string) Statement {
	return Statement{Sid: sid, Effect: "Allow", Principal: who, Action: actions, Resource: resources}
}

// deny refuses every S3 action to everyone when the condition holds.
func deny(sid string, resources []string, op, key, value string) Statement {
	st := Statement{Sid: sid, Effect: "Deny", Principal: &Principal{Everyone: true}, Action: []string{"s3:*"}, Resource: resources}
	return withCondition(st, op, key, value)
}

func withCondition(st Statement, op, key, value string) Statement {
	st.Condition = map[string]map[string]string{op: {key: value}}
	return st
}

func principals(arns []string) *Principal {
	return &Principal{AWS: arns}
}

// users are the principals of a dataset's users.
func users(p config.Policy, d *config.Dataset) *Principal {
	arns := make([]string, len(d.Users))
	for i, u := range d.Users {
		arns[i] = p.UserARN(u)
	}
	return principals(arns)
}

func bucketARN(p config.Policy, bucket string) string {
	return "arn:" + p.Partition + ":s3:::" + bucket
}

// objectsARN names the objects under prefix ("" or ending in "/").
func objectsARN(p config.Policy, bucket, prefix string) string {
	return bucketARN(p, bucket) + "/" + prefix + "*"
}

// viaS3 is the kms:ViaService value that limits a key's use to S3 in the
// key's region, so that a principal cannot use the key directly.
func viaS3(p config.Policy, key string) (string, error) {
	a, err := arn.Parse(key)
	if err != nil {
		return "", fmt.Errorf("kms key %q: %w", key, err)
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(p.Partition, "aws-cn") {
		suffix = "amazonaws.com.cn"
	}
	return "s3." + a.Region + "." + suffix, nil
}

// Route returns the documents of a route: the mover role's read of its
// source prefix and, for an s3:// destination, its write there.
func Route(p config.Policy, r *config.Route) (*Set, error) {
	set := &Set{Subject: "route " + r.Name, Documents: []Document{}}
	if err := set.need(p.MoverRoleARN, "mover_role_arn"); err != nil {
		return nil, err
	}
	source, _ := r.Watch("")
	if err := set.reader(p, "AirlockMoverRead", p.MoverRoleARN, "source", source); err != nil {
		return nil, err
	}
	if r.HTTPS() {
		set.Notes = append(set.Notes, "destination is an https:// receiver: no bucket policy")
		return set.finish()
	}
	dest, _ := r.Deliver()
	if err := set.writer(p, "AirlockMover", p.MoverRoleARN, "destination", config.Target{URL: dest, KMSKey: r.KMSKey}, moverS3, moverKMS); err != nil {
		return nil, err
	}
	return set.finish()
}

// reader adds what role needs to list and read below location (named
// what in notes): statements for the bucket's owner, and the role's policy.
func (s *Set) reader(p config.Policy, sid, role, what, location string) error {
	b, ok, err := s.s3Bucket(what, location)
	if err != nil || !ok {
		return err
	}
	objects, bucket := objectsARN(p, b.Name, b.Prefix), bucketARN(p, b.Name)
	s.Documents = append(s.Documents,
		Document{Kind: BucketStatements, Target: b.Name, Policy: Policy{Version: version, Statement: []Statement{
			allow(sid, principals([]string{role}), moverRead, objects),
			allow(sid+"List", principals([]string{role}), list, bucket),
		}}},
		Document{Kind: RolePolicy, Target: role, Policy: Policy{Version: version, Statement: []Statement{
			{Sid: sid, Effect: "Allow", Action: moverRead, Resource: []string{objects}},
			{Sid: sid + "List", Effect: "Allow", Action: list, Resource: []string{bucket}},
		}}})
	return nil
}
