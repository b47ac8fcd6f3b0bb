package modeltest

// NLL is nllOf, for the external tests.
var NLL = nllOf
