-- kemu: HTTPRoute RequestMirror for HAProxy 2.6, which has no native mirroring.
--
-- `http-request lua.kemu_mirror <ip:port>[,<ip:port>...]` copies the request as it
-- stands (after the rule's header filters) to one endpoint chosen at random, from a
-- background task: the client's request never waits for the mirror, and the mirror's
-- answer is read and dropped (the spec: mirrored responses are ignored). The body is
-- the part HAProxy buffered (the renderer adds `wait-for-body` first).

local hop_by_hop = {
    ["connection"] = true, ["keep-alive"] = true, ["proxy-connection"] = true,
    ["transfer-encoding"] = true, ["te"] = true, ["upgrade"] = true,
    ["content-length"] = true, ["expect"] = true,
}

math.randomseed(core.now().usec)

local function send_copy(host, port, data)
    local sock = core.tcp()
    sock:settimeout(5)
    if sock:connect(host, port) then
        sock:send(data)
        sock:receive("*a")
    end
    sock:close()
end

local function copy_of(txn)
    local parts = { txn.sf:method() .. " " .. txn.sf:pathq() .. " HTTP/1.1\r\n" }
    for name, values in pairs(txn.http:req_get_headers()) do
        if not hop_by_hop[name] then
            local i = 0 -- the values are numbered from 0
            while values[i] ~= nil do
                parts[#parts + 1] = name .. ": " .. values[i] .. "\r\n"
                i = i + 1
            end
        end
    end
    local body = txn.sf:req_body() or ""
    parts[#parts + 1] = "content-length: " .. #body .. "\r\nconnection: close\r\n\r\n"
    parts[#parts + 1] = body
    return table.concat(parts)
end

core.register_action("kemu_mirror", { "http-req" }, function(txn, endpoints)
    local ok, err = pcall(function()
        local list = {}
        for ep in string.gmatch(endpoints, "[^,]+") do
            list[#list + 1] = ep
        end
        local host, port = string.match(list[math.random(#list)], "^%[?(.-)%]?:(%d+)$")
        local data = copy_of(txn)
        core.register_task(function()
            pcall(send_copy, host, tonumber(port), data)
        end)
    end)
    if not ok then
        core.Warning("kemu_mirror: " .. tostring(err))
    end
end, 1)
