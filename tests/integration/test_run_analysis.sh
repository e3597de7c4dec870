#!/bin/sh
# The analyses end to end through `tessera run`: a demo slide, the example
# workflow tissue_mask -> cell_segmentation, its outputs in QuPath's forms,
# scored against the slide's ground truth; then bad parameters, bad images
# and a corrupt tile, each refused or failed with a message.
EXAMPLES="$(cd "$(dirname "$0")/../../examples" && pwd)"
. "$(dirname "$0")/lib.sh"

mkdir -p var/data
check "demo-slide writes a slide and its ground truth" \
    tessera demo-slide var/data/demo.tiff --size 4096x3072 --mpp 0.25 --seed 5
check "OpenSlide opens the demo slide as a generic TIFF" \
    sh -c "openslide-show-properties var/data/demo.tiff | grep -q \"openslide.vendor: 'generic-tiff'\""
check "ground truth: nuclei and tissue" test -s var/data/demo.nuclei.geojson -a -s var/data/demo.tissue.geojson

check "the example workflow runs: tissue_mask -> cell_segmentation" \
    tessera run "$EXAMPLES/demo-analysis.json" --user alice --concurrency-limit 2 --poll-seconds 0.2
wf_json 1 > st.json
check_eq "workflow succeeded" "$(jq -r .state st.json)" succeeded
T=var/results/1/tissue
C=var/results/1/cells
for f in mask.png tissue.geojson summary.json; do check "tissue_mask wrote $f" test -s "$T/$f"; done
for f in cells.geojson cells.csv summary.json; do check "cell_segmentation wrote $f" test -s "$C/$f"; done
check_eq "tissue annotations are QuPath annotations classified Tissue" \
    "$(jq '[.features[] | select(.properties.objectType=="annotation" and .properties.classification.name=="Tissue")] | length > 0' "$T/tissue.geojson")" true
count=$(jq .count "$C/summary.json")
check "cells were found ($count)" test "$count" -gt 100
check_eq "one GeoJSON cell per counted cell" "$(jq '.features | length' "$C/cells.geojson")" "$count"
check_eq "one CSV row per cell, plus the header" "$(wc -l < "$C/cells.csv")" "$((count + 1))"
check_eq "cells have geometry, nucleusGeometry and measurements" \
    "$(jq '[.features[] | select(.properties.objectType=="cell" and .geometry.type=="Polygon" and .nucleusGeometry.type=="Polygon" and (.properties.measurements["Nucleus: Area µm^2"] > 0))] | length' "$C/cells.geojson")" "$count"
check_eq "cells were restricted to the upstream tissue mask" "$(jq -r .area_source "$C/summary.json")" tissue_mask
check_eq "summary.json: stain vectors estimated from the slide, called H&E" \
    "$(jq -r '.stain.source + " " + .stain.type + " " + (.stain.hematoxylin | length | tostring)' "$C/summary.json")" "estimated (Macenko) he 3"
check_eq "summary.json: the threshold was chosen once for the slide" \
    "$(jq -r '.threshold.method | startswith("auto")' "$C/summary.json")" true
check_eq "summary.json: the tissue threshold and glass found" "$(jq -r '.otsu.glass_found' "$T/summary.json")" true

tessera evaluate cells --truth var/data/demo.nuclei.geojson --pred "$C/cells.geojson" --json > cells-eval.json
tessera evaluate tissue --truth var/data/demo.tissue.geojson --pred "$T/tissue.geojson" --json > tissue-eval.json
echo "# nucleus F1 $(jq .f1 cells-eval.json), PQ $(jq .pq cells-eval.json), AJI $(jq .aji cells-eval.json); tissue Dice $(jq .dice tissue-eval.json)"
check_eq "nucleus F1 at IoU 0.5 is at least 0.85" "$(jq '.f1 >= 0.85' cells-eval.json)" true
check_eq "tissue Dice is at least 0.9" "$(jq '.dice >= 0.9' tissue-eval.json)" true

# Bad parameters: refused before anything is stored (exit 2, field named).
bad_params() { # WHAT PARAMS FIELD
    printf '{"name":"bad","jobs":[{"job_id":"c","job_type":"cell_segmentation","image_path":"demo.tiff","params":%s}]}' "$2" > bad.json
    tessera run bad.json --user alice > bad.out 2>&1
    rc=$?
    check_eq "$1: exit 2" "$rc" 2
    check "$1: the message names $3" grep -q "$3" bad.out
}
bad_params "negative pixel size" '{"pixel_size_um": -1}' "params.pixel_size_um"
bad_params "min area above max area" '{"min_area_um2": 500, "max_area_um2": 100}' "params.min_area_um2"
bad_params "unknown parameter" '{"radius": 3}' "params.radius"
bad_params "tile size not an integer" '{"tile_size": 100.5}' "params.tile_size"
bad_params "threshold neither auto nor a number" '{"threshold": "high"}' "params.threshold"
bad_params "unknown stain" '{"stain": "pas"}' "params.stain"
bad_params "one stain vector" '{"stain_vectors": [[0.65, 0.70, 0.29]]}' "params.stain_vectors"
bad_params "parallel stain vectors" '{"stain_vectors": [[0.65, 0.70, 0.29], [1.3, 1.4, 0.58]]}' "params.stain_vectors"


# Bad images: refused at submission with the reason.
printf 'not a slide at all\n' > var/data/text.svs
head -c 200000 var/data/demo.tiff > var/data/truncated.tiff
bad_image() { # WHAT PATH NEEDLE
    printf '{"name":"bad","jobs":[{"job_id":"t","job_type":"tissue_mask","image_path":"%s"}]}' "$2" > bad.json
    tessera run bad.json --user alice > bad.out 2>&1
    rc=$?
    check_eq "$1: exit 2" "$rc" 2
    check "$1: the message says \"$3\"" grep -q "$3" bad.out
}
bad_image "a text file renamed .svs" text.svs "not a slide format"
bad_image "a truncated TIFF" truncated.tiff "image_path"
bad_image "a missing image" nope.tiff "no such file"
bad_image "a file outside the data roots" /etc/passwd "not found in the data roots"
bad_image "a missing file outside the data roots, the same words" /etc/nope.tiff "not found in the data roots"
check_eq "nothing bad was stored" "$(tessera status --all --json --user alice | jq 'length')" 1

# A corrupt tile inside the slide fails the job with a message.
cp var/data/demo.tiff var/data/corrupt.tiff
size=$(stat -c %s var/data/corrupt.tiff)
dd if=/dev/zero of=var/data/corrupt.tiff bs=1 seek=$((size / 3)) count=65536 conv=notrunc 2>/dev/null
printf '{"name":"corrupt","jobs":[{"job_id":"c","job_type":"cell_segmentation","image_path":"corrupt.tiff","params":{"pixel_size_um":0.25}}]}' > corrupt.json
tessera run corrupt.json --user alice > corrupt.out 2>&1
check_eq "a corrupt tile: the run reports failure (exit 1)" "$?" 1
wf_json 2 > st2.json
check_eq "a corrupt tile: the job failed" "$(jq -r '.jobs[0].state' st2.json)" failed
check "a corrupt tile: the job log says what failed" grep -q "cannot decode" var/work/2/c/job.log

# An H-DAB slide: "auto" tells it from H&E; explicit vectors and a number
# threshold are used as given and said so.
check "demo-slide writes an H-DAB slide" tessera demo-slide var/data/hdab.tiff --size 2048x2048 --seed 3 --stain hdab
printf '{"name":"hdab","jobs":[{"job_id":"a","job_type":"cell_segmentation","image_path":"hdab.tiff"},{"job_id":"b","job_type":"cell_segmentation","image_path":"hdab.tiff","params":{"threshold":0.12,"stain_vectors":[[0.65,0.70,0.29],[0.27,0.57,0.78]]}}]}' > hdab.json
check "cell segmentation runs on the H-DAB slide" tessera run hdab.json --user alice --concurrency-limit 2 --poll-seconds 0.2
H=$(ls -d var/results/*/a | tail -n 1)
check_eq "auto stain on H-DAB: estimated and called hdab" "$(jq -r '.stain.type + " " + .stain.second_stain' "$H/summary.json")" "hdab DAB"
check "H-DAB cells were found" test "$(jq .count "$H/summary.json")" -gt 20
check_eq "H-DAB measurements are named after DAB" \
    "$(jq -r '.features[0].properties.measurements | has("Nucleus: DAB OD mean")' "$H/cells.geojson")" true
check "the CSV says dab too" grep -q "nucleus_dab_od_mean" "$H/cells.csv"
H=$(dirname "$H")/b
check_eq "explicit stain vectors are used and reported" "$(jq -r '.stain.source + " " + .stain.type' "$H/summary.json")" "params.stain_vectors hdab"
check_eq "a number threshold is used as given" "$(jq -r '.threshold.method + " " + (.threshold.value | tostring)' "$H/summary.json")" "given 0.12"
summary
