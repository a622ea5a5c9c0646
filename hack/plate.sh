#!/usr/bin/env bash
# Generates a plate acquisition for tests and the demo: small real image
# files (8-bit PGM, one per well, site and channel, contents derived from
# their position) and their rows in ImageDB (plate_acquisition, channel_map,
# images), exactly as the lab's acquisition software registers them.
#
#   hack/plate.sh [--wells N] [--sites N] [--plate-format 96|384|1536]
#                 [--dyes DNA,ER,RNA,AGP,Mito] [--barcode B] [--dir DIR]
#                 [--unfinished] [--size PIXELS]
#
# Prints the new plate_acquisition id. Uses the PG* environment (see
# hack/imagedb.sh env). Wells are taken row-major from A01.
set -euo pipefail

wells=24 sites=4 format=384 dyes=DNA,ER,RNA,AGP,Mito barcode= dir= finished='now()' size=16
while [ $# -gt 0 ]; do
    case "$1" in
    --wells) wells=$2; shift 2 ;;
    --sites) sites=$2; shift 2 ;;
    --plate-format) format=$2; shift 2 ;;
    --dyes) dyes=$2; shift 2 ;;
    --barcode) barcode=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --unfinished) finished=NULL; shift ;;
    --size) size=$2; shift 2 ;;
    *) echo "plate: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$format" in
96) cols=12 ;; 384) cols=24 ;; 1536) cols=48 ;;
*) echo "plate: --plate-format must be 96, 384 or 1536" >&2; exit 2 ;;
esac
[ -n "$dir" ] || { echo "plate: --dir DIR is required (where the image files go)" >&2; exit 2; }
[ -n "$barcode" ] || barcode="P$(date +%s)$$"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
IFS=, read -r -a dye <<<"$dyes"
psql_() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

map=$(psql_ -c "SELECT coalesce(max(map_id), 0) + 1 FROM channel_map")
for i in "${!dye[@]}"; do
    psql_ -c "INSERT INTO channel_map (map_id, channel, dye) VALUES ($map, $((i + 1)), '${dye[$i]}')"
done
acq=$(psql_ -c "INSERT INTO plate_acquisition (plate_barcode, channel_map_id, folder, finished)
                VALUES ('$barcode', $map, '$dir', $finished) RETURNING id" | head -n1)

# Image contents: one of 200 patterns, built once (bash's printf writes files without forking).
export LC_ALL=C
declare -a blob
for ((v = 0; v < 200; v++)); do
    printf -v px "\\%03o" $((v + 32))
    printf -v ch "$px"
    printf -v line "%${size}s" ""
    printf -v b "P5\n%d %d\n255\n" "$size" "$size"
    for ((y = 0; y < size; y++)); do b+=${line// /$ch}; done
    blob[$v]=$b
done

rows=ABCDEFGHIJKLMNOPQRSTUVWXYZ
csv="$dir/.images.csv"
: >"$csv"
for ((w = 0; w < wells; w++)); do
    r=$((w / cols)) c=$((w % cols + 1))
    if [ "$r" -lt 26 ]; then rowname=${rows:$r:1}; else rowname=A${rows:$((r - 26)):1}; fi
    well=$(printf '%s%02d' "$rowname" "$c")
    for ((s = 1; s <= sites; s++)); do
        for i in "${!dye[@]}"; do
            f="$dir/${barcode}_${well}_s${s}_w$((i + 1)).pgm"
            printf '%s' "${blob[$(( (w * 7 + s * 13 + i * 29) % 200 ))]}" >"$f"
            printf '%s,%s,1,%s,%s,0,%s,%s\n' "$acq" "$barcode" "$well" "$s" "$((i + 1))" "$f" >>"$csv"
        done
    done
done
psql_ -c "\\copy images (plate_acquisition_id, plate_barcode, timepoint, well, site, z, channel, path) FROM '$csv' WITH (FORMAT csv)"
rm -f "$csv"
echo "$acq"
