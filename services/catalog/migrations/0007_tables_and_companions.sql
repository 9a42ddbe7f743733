-- Tables (테이블석) and companion seats (동반석). `table_id`: the id of the first seat of the
-- table a seat belongs to (its seats are sold together); `companion_of`: on a companion seat, the
-- id of the wheelchair seat it is sold with. Both null for every seat before them.
ALTER TABLE venue_seats
    ADD COLUMN table_id     text,
    ADD COLUMN companion_of text;
