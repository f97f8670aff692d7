using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse encode</c>.</summary>
public sealed class EncodeSettings : EditingSettings
{
    /// <summary>Settings from the command line.</summary>
    public EncodeSettings()
    {
    }

    /// <summary>Settings given by a request to <c>diffuse serve</c> (internal: the command line builds settings by their one public constructor).</summary>
    internal EncodeSettings(EditingChoices choices) : base(choices)
    {
    }

    /// <summary>Images.</summary>
    [CommandOption("--images <SOURCE>")]
    [Description("PNG/JPEG files separated by commas, a folder of them, or a data set with an optional split (fashion-mnist:test, the default split).")]
    public string? Images { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <FILE>")]
    [Description("The latent file to write (.safetensors): the latents with the model's identity, sampler, steps, levels, classes and guidance.")]
    public string? Out { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <K>")]
    [Description("Encode only the first K images.")]
    public int? Count { get; init; }

    /// <summary>Check.</summary>
    [CommandOption("--check")]
    [Description("Also decode the latents and print the reconstruction error (PSNR and max pixel error).")]
    public bool Check { get; init; }
}

/// <summary><c>diffuse encode</c>: images to latents by DDIM inversion (the probability-flow ODE run from data to noise).</summary>
public sealed class EncodeCommand : Command<EncodeSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, EncodeSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Out) || !settings.Out.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new DiffuseException($"--out is required and must end in .safetensors (got '{settings.Out}').");
        settings.EditingSampler();
        var (model, _) = settings.LoadModel("encode");
        using (model)
        {
            var plan = EncodePlan.For(settings, model);
            using var scope = NewDisposeScope();
            var (images, labels, _) = EditingIo.Load(settings.Images!, model, settings.Resize, settings.Count);
            var run = EditingIo.Console(cancellationToken);
            var (latents, info) = plan.Run(model, settings.Model!, images, labels, run);
            if (settings.Check)
            {
                var decoded = plan.Decode(model, latents, info, run);
                CliContext.Out.WriteLine($"reconstruction: {EditingIo.Reconstruction(images, decoded)}");
            }
            LatentFile.Save(settings.Out, latents, info);
            var norms = latents.flatten(1).norm(1);
            CliContext.Out.WriteLine($"wrote {info.Classes.Length} latents to {Path.GetFullPath(settings.Out)} (mean norm {norms.mean().item<float>():0.0}; √D = {Math.Sqrt(model.Dimensions):0.0} for N(0, I))");
        }
        return 0;
    }
}

/// <summary>
/// What <c>diffuse encode</c> (and the server's encode route) does with its options, checked against the model before
/// any work: the deterministic sampler and its levels, the class and the guidance (default 1, where inversion is most exact).
/// </summary>
/// <param name="Options">The sampler.</param>
/// <param name="Path">Its σ-space path.</param>
/// <param name="Only">--class, or null.</param>
/// <param name="Guidance">The guidance scale.</param>
public sealed record EncodePlan(SamplerOptions Options, EditingPath Path, long? Only, double Guidance)
{
    /// <summary>Checks <paramref name="settings"/> against <paramref name="model"/>.</summary>
    /// <exception cref="DiffuseException">An option is invalid (a stochastic sampler, say).</exception>
    public static EncodePlan For(EditingSettings settings, DiffusionModel model)
    {
        var options = settings.EditingSampler();
        var path = EditingPath.Resolve(options, model.Schedule, deterministic: true);
        return new EncodePlan(options, path, settings.ClassFor(model), settings.Guidance ?? 1);
    }

    /// <summary>Network evaluations per image (the sampler's steps over the latent levels).</summary>
    public int Evaluations(DiffusionModel model) => Options.FunctionEvaluations(model.Schedule);

    /// <summary>
    /// Encodes <paramref name="images"/> (model range): images from a labelled data set with their own class
    /// (<paramref name="labels"/>), --class with it, others unconditionally. Returns the latents and what to record with
    /// them; <paramref name="source"/> names the model in the record.
    /// </summary>
    public (Tensor Latents, LatentInfo Info) Run(DiffusionModel model, string source, Tensor images, long[]? labels, EditingRun run)
    {
        int count = (int)images.shape[0];
        long[] classes = model.ClassCount == 0 ? Enumerable.Repeat(-1L, count).ToArray()
            : Only is { } k ? Enumerable.Repeat(k, count).ToArray() : labels ?? Enumerable.Repeat(-1L, count).ToArray();
        var levels = Path.LatentLevels();
        string what = model.ClassCount == 0 ? "unconditional" : Only is not null ? $"class {Only}, guidance {Guidance:0.##}" : labels is not null ? $"the images' classes, guidance {Guidance:0.##}" : "unconditional (no --class)";
        run.Log($"encoding {count} images with {SamplerSpacings.Describe(Options, model.Schedule)} ({SamplerNames.Name(Path.Kind)} on {levels.Length - 1} levels up to σ = {levels[0]:G4}); {what}");
        var conditioning = Conditioning(model, classes);
        var latents = run.Progress("encode", EditingIo.Total(levels.Length - 1, count), run.CancellationToken, (report, token) =>
            model.Encode(images, Options, conditioning, Guidance, report, cancellationToken: token));
        return (latents, new LatentInfo(model.Identity, source, SamplerNames.Name(Path.Kind), levels.Length - 1, levels, classes, Guidance));
    }

    /// <summary>Decodes the latents again with the encoding's sampler, classes and guidance (--check).</summary>
    public Tensor Decode(DiffusionModel model, Tensor latents, LatentInfo info, EditingRun run) =>
        run.Progress("decode", EditingIo.Total(info.Steps, info.Classes.Length), run.CancellationToken, (report, token) =>
            model.Decode(latents, Options, Conditioning(model, info.Classes), Guidance, report, cancellationToken: token));

    private static IReadOnlyList<long>? Conditioning(DiffusionModel model, long[] classes) => model.ClassCount == 0 ? null : classes;
}
