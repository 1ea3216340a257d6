-- The run lock a run held (NULL: none). A 'running' row whose lock a later run has taken belongs to a run
-- that died without closing its row (a killed process or machine); that later run marks it 'crashed'.
ALTER TABLE runs ADD COLUMN run_lock VARCHAR;
