using System.ComponentModel;
using System.Globalization;
using Diffuse.Parameterization;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Spectre.Console.Cli;

namespace Diffuse.Cli.Commands;

/// <summary>Options every command accepts.</summary>
public class CommonSettings : CommandSettings
{
    /// <summary>Intra-op threads for libtorch.</summary>
    [CommandOption("--threads <N>")]
    [Description("CPU threads for libtorch (default 1: for these model sizes one thread is fastest on small machines; see docs/benchmarks.md).")]
    public int? Threads { get; init; }

    /// <summary>Applies the thread setting.</summary>
    public void ApplyThreads()
    {
        int threads = Threads ?? 1;
        if (threads < 1) throw new DiffuseException($"--threads must be at least 1 (got {threads}).");
        TorchSharp.torch.set_num_threads(threads);
    }
}

/// <summary>Sampler options shared by sample, eval and demo.</summary>
public class SamplerSettings : CommonSettings
{
    /// <summary>Sampler name.</summary>
    [CommandOption("--sampler <NAME>")]
    [Description("ddpm (ancestral) or ddim. Default: ddpm.")]
    public string Sampler { get; init; } = "ddpm";

    /// <summary>Number of steps.</summary>
    [CommandOption("--steps <N>")]
    [Description("Sampling steps, a subsequence of the trained timesteps (default: all of them).")]
    public int Steps { get; init; }

    /// <summary>DDIM η.</summary>
    [CommandOption("--eta <E>")]
    [Description("DDIM stochasticity η: 0 deterministic, 1 like DDPM. Default 0.")]
    public double Eta { get; init; }

    /// <summary>Timestep spacing.</summary>
    [CommandOption("--spacing <NAME>")]
    [Description("How the steps are chosen: trailing (default), leading or linspace.")]
    public string Spacing { get; init; } = "trailing";

    /// <summary>DDPM variance.</summary>
    [CommandOption("--variance <NAME>")]
    [Description("DDPM reverse variance: small (β̃, default) or large (β).")]
    public string Variance { get; init; } = "small";

    /// <summary>x0 clipping.</summary>
    [CommandOption("--clip <C>")]
    [Description("Clamp each step's x0 estimate to [-C, C] in standardised units (off by default).")]
    public double? Clip { get; init; }

    /// <summary>Seed.</summary>
    [CommandOption("--seed <S>")]
    [Description("Seed: sample i depends only on (seed, i). Default 0.")]
    public ulong Seed { get; init; }

    /// <summary>Turns off the projection of x0 onto the data's range.</summary>
    [CommandOption("--no-clamp")]
    [Description("Do not project each step's x0 estimate onto the training data's bounding box (on by default; the exact denoiser always lies inside it).")]
    public bool NoClamp { get; init; }

    /// <summary>The sampler options these settings describe.</summary>
    public SamplerOptions ToSamplerOptions()
    {
        var options = new SamplerOptions(
            Parse.Enum<SamplerKind>("--sampler", Sampler),
            Steps,
            Parse.Enum<TimestepSpacing>("--spacing", Spacing),
            Eta,
            Parse.Enum<DdpmVariance>("--variance", Variance),
            Clip);
        options.Validate();
        return options;
    }
}

/// <summary>Parsing of option values with messages that list the choices.</summary>
public static class Parse
{
    /// <summary>Parses an enum value by its lower-case name (aliases: eps for epsilon).</summary>
    public static T Enum<T>(string option, string value) where T : struct, System.Enum
    {
        string key = value.Trim().ToLowerInvariant() switch { "eps" => "epsilon", var v => v };
        foreach (var candidate in System.Enum.GetValues<T>())
            if (string.Equals(candidate.ToString(), key, StringComparison.OrdinalIgnoreCase)) return candidate;
        var names = System.Enum.GetValues<T>().Select(v => v.ToString().ToLowerInvariant());
        throw new DiffuseException($"{option} must be one of {string.Join(", ", names)} (got '{value}').");
    }

    /// <summary>The schedule named by --schedule.</summary>
    public static ScheduleKind Schedule(string value)
    {
        string key = value.Trim().ToLowerInvariant();
        if (key == "custom") throw new DiffuseException("--schedule custom needs a β array: use the library API (ScheduleConfig with Betas).");
        foreach (var kind in new[] { ScheduleKind.Linear, ScheduleKind.Cosine, ScheduleKind.Sigmoid })
            if (kind.ToString().ToLowerInvariant() == key) return kind;
        throw new DiffuseException($"--schedule must be one of linear, cosine, sigmoid (got '{value}').");
    }

    /// <summary>The prediction named by --prediction.</summary>
    public static Prediction Prediction(string value) => Enum<Prediction>("--prediction", value);

    /// <summary>Formats a number for output with invariant culture.</summary>
    public static string F(double value, int digits = 4) => value.ToString("F" + digits, CultureInfo.InvariantCulture);
}
