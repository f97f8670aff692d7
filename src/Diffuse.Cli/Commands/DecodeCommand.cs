using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse decode</c>.</summary>
public sealed class DecodeSettings : EditingSettings
{
    /// <summary>Settings from the command line.</summary>
    public DecodeSettings()
    {
    }

    /// <summary>Settings given by a request to <c>diffuse serve</c> (internal: the command line builds settings by their one public constructor).</summary>
    internal DecodeSettings(EditingChoices choices) : base(choices)
    {
    }

    /// <summary>Latents.</summary>
    [CommandOption("--latents <FILE>")]
    [Description("A latent file written by 'diffuse encode' with the same model.")]
    public string? Latents { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <PATH>")]
    [Description("A .png grid, or a folder for one PNG per image.")]
    public string? Out { get; init; }
}

/// <summary><c>diffuse decode</c>: latents back to images, with the encoding's class or another (a class edit).</summary>
public sealed class DecodeCommand : Command<DecodeSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, DecodeSettings settings, CancellationToken cancellationToken)
    {
        EditingIo.CheckOut(settings.Out);
        if (string.IsNullOrWhiteSpace(settings.Latents)) throw new DiffuseException("--latents is required: a file written by 'diffuse encode'.");
        DecodePlan.CheckSampler(settings);
        var (model, _) = settings.LoadModel("decode");
        using (model)
        {
            using var scope = NewDisposeScope();
            var (latents, info) = LatentFile.Load(settings.Latents);
            var plan = DecodePlan.For(settings, model, latents, info);
            var output = plan.Run(model, latents, Path.GetExtension(settings.Out!).Length > 0, EditingIo.Console(cancellationToken));
            output.Save(settings.Out!);
        }
        return 0;
    }
}

/// <summary>
/// What <c>diffuse decode</c> (and the server's decode route) does with a latent file and its options: the recorded
/// sampler and levels, the encoding's classes or --class (a class edit), the encoding's guidance or --guidance.
/// </summary>
/// <param name="Info">What the latents were encoded with.</param>
/// <param name="Options">The recorded sampler on the recorded levels, with --clip.</param>
/// <param name="Only">--class, or null.</param>
/// <param name="Guidance">The guidance scale.</param>
public sealed record DecodePlan(LatentInfo Info, SamplerOptions Options, long? Only, double Guidance)
{
    /// <summary>Refuses sampler options: decoding runs the sampler and levels recorded in the latent file.</summary>
    public static void CheckSampler(DecodeSettings settings)
    {
        if (settings.ChoosesSampler || settings.Nfe is not null)
            throw new DiffuseException("decode runs the sampler and levels recorded in the latent file; --sampler, --steps and the other sampler options do not apply.");
    }

    /// <summary>Checks the latents, their record and <paramref name="settings"/> against <paramref name="model"/>.</summary>
    /// <exception cref="DiffuseException">The latents are another model's or of another shape, or an option is invalid.</exception>
    public static DecodePlan For(DecodeSettings settings, DiffusionModel model, Tensor latents, LatentInfo info)
    {
        CheckSampler(settings);
        LatentFile.CheckModel(info, model, settings.Model!);
        if (latents.dim() != model.ExampleShape.Length + 1 || !latents.shape[1..].SequenceEqual(model.ExampleShape))
            throw new DiffuseException($"the latents are [{string.Join(", ", latents.shape)}] but this model's are [N, {string.Join(", ", model.ExampleShape)}]; encode the images again with this model.");
        var options = new SamplerOptions(SamplerNames.Parse(info.Sampler), SigmaList: info.Sigmas, ClipX0: settings.Clip);
        EditingPath.Resolve(options, model.Schedule, deterministic: true);
        return new DecodePlan(info, options, settings.ClassFor(model), settings.Guidance ?? info.Guidance);
    }

    /// <summary>Network evaluations per image.</summary>
    public int Evaluations(DiffusionModel model) => Options.FunctionEvaluations(model.Schedule);

    /// <summary>Decodes <paramref name="latents"/> into a grid (<paramref name="grid"/>) or one PNG per image.</summary>
    public EditingOutput Run(DiffusionModel model, Tensor latents, bool grid, EditingRun run)
    {
        int count = (int)latents.shape[0];
        var classes = Only is { } k ? Enumerable.Repeat(k, count).ToArray() : Info.Classes;
        run.Log($"decoding {count} latents ({LatentFile.Describe(Info)}){(Only is { } c ? $" as class {c} ({model.ClassNames[(int)c]}), guidance {Guidance:0.##}" : "")}");
        var images = run.Progress("decode", EditingIo.Total(Info.Steps, count), run.CancellationToken, (report, token) =>
            model.Decode(latents, Options, model.ClassCount == 0 ? null : classes, Guidance, report, cancellationToken: token));
        var names = Enumerable.Range(0, count).Select(i => classes[i] >= 0 ? $"{i:D5}-class{classes[i]}" : $"{i:D5}").ToArray();
        return EditingIo.Render(grid, images, names, (int)Math.Ceiling(Math.Sqrt(count)));
    }
}
