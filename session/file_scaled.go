package session

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Coordinates come from a GeoIP database with at most a few decimals:
// 52.52 takes 8 bytes as a float64 and 4 as 5,252,000 hundred-
// thousandths. The file writes a float that reads back exactly from its
// hundred-thousandths that way, under its field's number plus
// scaledField, and any other as the float64 it is.
const scaledField protowire.Number = 1500

const scaledBy = 1e5

type scaledFloat float64

// appendScaled writes x as its hundred-thousandths when they give x
// back exactly.
func appendScaled(b []byte, num protowire.Number, x float64) ([]byte, bool) {
	v := math.Round(x * scaledBy)
	if math.Abs(v) >= 1<<52 || v/scaledBy != x {
		return b, false
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num+scaledField, protowire.VarintType), protowire.EncodeZigZag(int64(v))), true
}

func consumeScaled(typ protowire.Type, b []byte, p *scaledFloat) int {
	v, n := protowire.ConsumeVarint(b)
	if typ != protowire.VarintType || n < 0 {
		return -1
	}
	*p = scaledFloat(float64(protowire.DecodeZigZag(v)) / scaledBy)
	return n
}
