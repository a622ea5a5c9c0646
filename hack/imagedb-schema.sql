-- The ImageDB tables plateop reads and writes, with the types the lab's
-- system uses. The local test bed, the tests and the demo all load this one
-- file; a lab's production database already has these tables.
--
-- plateop never creates or alters these tables in a lab's database: its own
-- migration (lib/idb) only adds a notification trigger function and triggers.

CREATE TABLE IF NOT EXISTS channel_map (
    map_id   integer NOT NULL,
    channel  integer NOT NULL,
    dye      text    NOT NULL,
    PRIMARY KEY (map_id, channel)
);

CREATE TABLE IF NOT EXISTS plate_acquisition (
    id              serial PRIMARY KEY,
    plate_barcode   text    NOT NULL,
    imaged          timestamp DEFAULT now(),
    microscope      text,
    channel_map_id  integer,
    timepoint       integer DEFAULT 1,
    folder          text,
    finished        timestamp
);

CREATE TABLE IF NOT EXISTS images (
    id                    bigserial PRIMARY KEY,
    plate_acquisition_id  integer NOT NULL,
    plate_barcode         text    NOT NULL,
    timepoint             integer NOT NULL,
    well                  text    NOT NULL,
    site                  integer NOT NULL,
    z                     integer NOT NULL,
    channel               integer NOT NULL,
    path                  text    NOT NULL
);
CREATE INDEX IF NOT EXISTS images_acq_idx
    ON images (plate_acquisition_id, timepoint, well, site, z, channel);

CREATE TABLE IF NOT EXISTS image_analyses (
    id                    serial PRIMARY KEY,
    plate_acquisition_id  integer NOT NULL,
    pipeline_name         text,
    meta                  jsonb,
    start                 timestamp,
    finish                timestamp,
    error                 timestamp,
    status                jsonb,
    result                jsonb,
    priority              integer DEFAULT 0
);

CREATE TABLE IF NOT EXISTS image_sub_analyses (
    sub_id                serial PRIMARY KEY,
    analysis_id           integer NOT NULL REFERENCES image_analyses (id),
    plate_acquisition_id  integer NOT NULL,
    meta                  jsonb,
    depends_on_sub_id     jsonb,
    start                 timestamp,
    finish                timestamp,
    error                 timestamp,
    status                jsonb,
    result                jsonb,
    priority              integer DEFAULT 0
);
