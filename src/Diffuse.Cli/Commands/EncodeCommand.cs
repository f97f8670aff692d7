using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse encode</c>.</summary>
public sealed class EncodeSettings : EditingSettings
{
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
        var options = settings.EditingSampler();
        var (model, folder) = settings.LoadModel("encode");
        using (model)
        {
            var path = EditingPath.Resolve(options, model.Schedule, deterministic: true);
            long? only = settings.ClassFor(model);
            double guidance = settings.Guidance ?? 1;
            using var scope = NewDisposeScope();
            var (images, labels, _) = EditingIo.Load(settings.Images!, model, settings.Resize, settings.Count);
            int count = (int)images.shape[0];
            long[] classes = model.ClassCount == 0 ? Enumerable.Repeat(-1L, count).ToArray()
                : only is { } k ? Enumerable.Repeat(k, count).ToArray() : labels ?? Enumerable.Repeat(-1L, count).ToArray();
            var levels = path.LatentLevels();
            string what = model.ClassCount == 0 ? "unconditional" : only is not null ? $"class {only}, guidance {guidance:0.##}" : labels is not null ? $"the images' classes, guidance {guidance:0.##}" : "unconditional (no --class)";
            CliContext.Out.WriteLine($"encoding {count} images with {SamplerSpacings.Describe(options, model.Schedule)} ({SamplerNames.Name(path.Kind)} on {levels.Length - 1} levels up to σ = {levels[0]:G4}); {what}");
            IReadOnlyList<long>? conditioning = model.ClassCount == 0 ? null : classes;
            var latents = EditingIo.WithProgress("encode", EditingIo.Total(levels.Length - 1, count), cancellationToken, (report, token) =>
                model.Encode(images, options, conditioning, guidance, report, cancellationToken: token));
            var info = new LatentInfo(model.Identity, settings.Model!, SamplerNames.Name(path.Kind), levels.Length - 1, levels, classes, guidance);
            if (settings.Check)
            {
                var decoded = EditingIo.WithProgress("decode", EditingIo.Total(levels.Length - 1, count), cancellationToken, (report, token) =>
                    model.Decode(latents, options, conditioning, guidance, report, cancellationToken: token));
                CliContext.Out.WriteLine($"reconstruction: {EditingIo.Reconstruction(images, decoded)}");
            }
            LatentFile.Save(settings.Out, latents, info);
            var norms = latents.flatten(1).norm(1);
            CliContext.Out.WriteLine($"wrote {count} latents to {Path.GetFullPath(settings.Out)} (mean norm {norms.mean().item<float>():0.0}; √D = {Math.Sqrt(model.Dimensions):0.0} for N(0, I))");
        }
        return 0;
    }
}
