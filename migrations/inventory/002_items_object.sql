-- Reservations used to bind the items as JSON text into a jsonb parameter, which the driver encoded once more, so
-- rows held a jsonb string. They now bind the array; this turns rows written before into arrays, so reads get what
-- the Database contract promises for jsonb (a parsed value) without a second JSON.parse.
update reservations set items = (items #>> '{}')::jsonb where jsonb_typeof(items) = 'string';
