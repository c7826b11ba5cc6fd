package netops

// PeerState is peerState for the external tests.
var PeerState = peerState
