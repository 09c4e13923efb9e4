package resource_test

import "crypto"

func cryptoSHA256() crypto.Hash { return crypto.SHA256 }
