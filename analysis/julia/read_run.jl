# read_run.jl — read a spiral run (one HDF5 file, layout in docs/output.md) with HDF5.jl.
#
#   julia --project -e 'using Pkg; Pkg.add("HDF5")'      # once
#   julia analysis/julia/read_run.jl /tmp/arb.h5 pool
#
# Prints the run's root attributes, the market table /markets/<name> (default:
# the first market), /events/trades with venue/agent/cause/side decoded
# through their CF attributes flag_values / flag_meanings, /events/liquidations
# (per mechanism: count, value = collateral_seized x oracle_price, bad debt;
# the cascade depth) and /summary.  See analysis/julia/README.md.
#
# NOT RUN: Julia is not installed on the machines this was written on, so this
# file has not been executed; it uses only the documented HDF5.jl API
# (h5open, haskey, keys, read, attributes / read_attribute) and Base.
using HDF5

"Read every column (1-D dataset) of a table group into a Dict name => Vector."
function read_table(f, group::AbstractString)
    g = f[group]
    Dict(String(k) => read(g[k]) for k in keys(g) if g[k] isa HDF5.Dataset)
end

"Whether the file has the group at `path` (e.g. \"events/liquidations\")."
function has_group(f, path::AbstractString)
    parts = split(path, "/")
    node = f
    for p in parts
        haskey(node, String(p)) || return false
        node = node[String(p)]
    end
    node isa HDF5.Group
end

"Decode a category column: code => name using flag_values / flag_meanings."
function decode(f, path::AbstractString)
    d = f[path]
    codes = read(d)
    values = read_attribute(d, "flag_values")
    names = split(read_attribute(d, "flag_meanings"))
    lookup = Dict(Int(v) => String(n) for (v, n) in zip(values, names))
    [get(lookup, Int(c), missing) for c in codes]
end

function main(path::AbstractString, market::Union{Nothing,AbstractString}=nothing)
    h5open(path, "r") do f
        status = read_attribute(f, "status")
        status == "complete" ||
            @warn "run status is $(repr(status)), not \"complete\": tables may stop short"
        for a in ("name", "scenario", "seed", "status", "software", "horizon", "t_end")
            haskey(attributes(f), a) && println(rpad(a, 10), read_attribute(f, a))
        end
        config = read(f["config.yaml"])          # the resolved scenario, YAML text
        println("config.yaml: ", length(config), " characters")

        # /markets/<name>: t (s), price, and reserve_0/reserve_1 (AMM) or best_bid/best_ask (book)
        names = collect(keys(f["markets"]))
        m = market === nothing ? first(names) : market
        tab = read_table(f, "markets/$m")
        t, price = tab["t"], tab["price"]
        g = f["markets/$m"]
        kind = haskey(attributes(g), "type") ? read_attribute(g, "type") :
               haskey(attributes(g), "process") ? "reference ($(read_attribute(g, "process")))" : "?"
        println("/markets/$m ($kind): $(length(t)) rows, t = $(first(t)) .. $(last(t)) s, ",
                "price $(first(price)) -> $(last(price)), columns ", sort(collect(keys(tab))))

        # /events/trades: one row per fill; venue/agent are entity ids, cause/side small codes
        tr = read_table(f, "events/trades")
        n = length(tr["t"])
        println("/events/trades: $n rows")
        if n > 0
            venue = decode(f, "events/trades/venue")
            agent = decode(f, "events/trades/agent")
            cause = decode(f, "events/trades/cause")
            side = decode(f, "events/trades/side")
            # quote volume: quote paid on buys, quote received on sells
            qv = [s == "buy" ? tr["amount_in"][i] : tr["amount_out"][i] for (i, s) in enumerate(side)]
            for c in unique(cause)
                sel = cause .== c
                println("  cause $(rpad(c, 14)) fills $(rpad(count(sel), 7)) quote volume $(sum(qv[sel]))")
            end
            println("  first fill: t=$(tr["t"][1]) venue=$(venue[1]) agent=$(agent[1]) ",
                    "$(side[1]) price $(tr["price_before"][1]) -> $(tr["price_after"][1])")
        end

        # /events/liquidations: one row per liquidation step (docs/output.md); exists,
        # possibly empty, whenever the scenario has a lending protocol
        if has_group(f, "events/liquidations")
            liq = read_table(f, "events/liquidations")
            nl = length(liq["t"])
            println("/events/liquidations: $nl rows")
            if nl > 0
                mech = decode(f, "events/liquidations/mechanism")
                prot = decode(f, "events/liquidations/protocol")
                value = liq["collateral_seized"] .* liq["oracle_price"]   # USD at the protocol's price
                for mk in unique(mech)
                    sel = mech .== mk
                    println("  mechanism $(rpad(mk, 16)) liquidations $(rpad(count(sel), 6)) ",
                            "value $(sum(value[sel])) debt repaid $(sum(liq["debt_repaid"][sel])) ",
                            "bad debt $(sum(liq["bad_debt"][sel]))")
                end
                println("  protocols: ", join(unique(prot), ", "),
                        "; cascade depth (highest generation) $(maximum(liq["generation"]))")
            end
        end

        # /summary: scalar metrics as attributes
        s = attributes(f["summary"])
        println("/summary: ", join(("$k=$(read_attribute(f["summary"], k))" for k in keys(s)), ", "))
    end
end

if abspath(PROGRAM_FILE) == @__FILE__
    length(ARGS) >= 1 || (println(stderr, "usage: julia read_run.jl RUN.h5 [MARKET]"); exit(2))
    main(ARGS[1], length(ARGS) >= 2 ? ARGS[2] : nothing)
end
