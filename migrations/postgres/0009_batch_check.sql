-- The ingest writer stores a batch of reports in one statement outside an explicit transaction
-- when it bets that every report is new and every agent still enrolled under its key. The
-- statement ends by calling this with whether the bet held; when it did not, the error undoes
-- the whole statement (nothing stored) and the writer stores the batch the careful way. The
-- SQLSTATE is hatang's own, so the writer can tell a lost bet from a failure.
CREATE FUNCTION hatang_batch_check(held boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT held THEN
        RAISE EXCEPTION 'hatang: a report of the batch was already stored or its agent revoked'
            USING ERRCODE = 'HTB01';
    END IF;
    RETURN true;
END
$$;
