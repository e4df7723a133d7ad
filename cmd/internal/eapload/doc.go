// Package eapload is the EAP-TLS load generator behind `make bench`: full
// EAP-TLS authentications over RADIUS/UDP (Access-Request/Challenge with
// State, EAP-Message split into 253-octet attributes, Message-Authenticator)
// driven by the in-repo Go supplicant (eaptlstest), so the figure measured
// is the server's work, not the client's. eapol_test spends about 24 ms of
// its own CPU per run and would measure itself.
//
// It speaks plain RADIUS, so the same run can target mxedge's local NAC and
// FreeRADIUS's EAP-TLS on the same certificates. Every conversation's
// MS-MPPE keys are decrypted and compared with the supplicant's MSK, so a
// fast but wrong server does not score.
package eapload
