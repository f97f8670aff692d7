using Diffuse.Sampling;
using Spectre.Console.Cli;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse samplers</c> (none).</summary>
public sealed class SamplersSettings : CommandSettings
{
}

/// <summary>
/// <c>diffuse samplers</c>: the sampler table (<see cref="SamplerTable"/>) as the command line's help: every sampler's
/// name, its network evaluations per step, the spacings and options it accepts, whether it draws noise, and its method.
/// </summary>
public sealed class SamplersCommand : Command<SamplersSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, SamplersSettings settings, CancellationToken cancellationToken)
    {
        var output = CliContext.Out;
        var rows = SamplerTable.All.Select(d => (
            d.Name,
            Nfe: d.EvaluationsPerStep == 1 ? "1" : $"{d.EvaluationsPerStep} (1 on the last step)",
            Spacings: d.Accepts(SamplerOption.NoiseLevels) ? "all" : "timesteps",
            Options: Options(d),
            Noise: d.DrawsNoise ? "yes" : "no",
            d.Summary)).ToList();
        var header = (Name: "sampler", Nfe: "NFE/step", Spacings: "spacings", Options: "options", Noise: "noise", Summary: "method");
        int w1 = rows.Max(r => r.Name.Length), w2 = Math.Max(header.Nfe.Length, rows.Max(r => r.Nfe.Length)),
            w3 = header.Spacings.Length + 1, w4 = Math.Max(header.Options.Length, rows.Max(r => r.Options.Length));
        string Line(string a, string b, string c, string d, string e, string f) =>
            $"{a.PadRight(w1)}  {b.PadRight(w2)}  {c.PadRight(w3)}  {d.PadRight(w4)}  {e.PadRight(5)}  {f}";
        output.WriteLine(Line(header.Name, header.Nfe, header.Spacings, header.Options, header.Noise, header.Summary));
        foreach (var r in rows) output.WriteLine(Line(r.Name, r.Nfe, r.Spacings, r.Options, r.Noise, r.Summary));
        output.WriteLine();
        output.WriteLine($"Spacings (--spacing): {string.Join(", ", SamplerSpacings.All)}; 'timesteps' samplers take trailing, leading and linspace only.");
        output.WriteLine("Every sampler also takes --steps, --nfe, --clip and an explicit list (--sigmas for σ-space samplers).");
        output.WriteLine("A sampler that draws no noise is deterministic (with η = 0 and no churn): it can encode images (diffuse encode).");
        return 0;
    }

    private static string Options(SamplerDefinition d)
    {
        var names = new List<string>();
        if (d.Accepts(SamplerOption.Eta)) names.Add("--eta");
        if (d.Accepts(SamplerOption.Variance)) names.Add("--variance");
        if (d.Accepts(SamplerOption.Churn)) names.Add("--s-churn");
        return names.Count == 0 ? "-" : string.Join(" ", names);
    }
}
