-- createOrder() used to bind the items as JSON text into a jsonb parameter, which the driver encoded once more, so
-- rows held a jsonb string. It now binds the array; this turns rows written before into arrays, so reads get what
-- the Database contract promises for jsonb (a parsed value) without a second JSON.parse.
update orders set items = (items #>> '{}')::jsonb where jsonb_typeof(items) = 'string';
