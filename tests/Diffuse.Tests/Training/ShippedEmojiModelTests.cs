using Diffuse.Data.Images;
using Diffuse.Sampling;

namespace Diffuse.Tests.Training;

/// <summary>The colour model shipped in models/emoji: found by name, 32×32 RGB, one class per category, its licence beside it.</summary>
public class ShippedEmojiModelTests
{
    [Fact]
    public void TheEmojiModelLoadsByNameWithItsLicenceAndSamplesColourImages()
    {
        Assert.Contains("emoji", ShippedModels.Names);
        using var model = DiffusionModel.Load("emoji");
        Assert.Equal(new long[] { 3, 32, 32 }, model.ExampleShape);
        Assert.Equal(EmojiDatasets.Categories, model.ClassNames);
        Assert.Equal("emoji (train)", model.Config.Data.Source);
        Assert.Equal(EmojiDatasets.Licence("emoji"), model.Config.Data.Licence);
        string notice = File.ReadAllText(Path.Combine(ShippedModels.Resolve("emoji"), "NOTICE.md"));
        Assert.Contains("Twitter, Inc. and other contributors", notice);
        Assert.Contains("CC-BY 4.0", notice);
        Assert.False(File.Exists(Path.Combine(ShippedModels.Resolve("emoji"), "resume.safetensors")), "the resume state is not shipped");

        using var images = model.SampleImages(2, 0, new SamplerOptions(SamplerKind.DpmSolver2M, 3, Spacing: SamplerSpacing.LogSnr), classes: [0, 8]);
        Assert.Equal(new long[] { 2, 3, 32, 32 }, images.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Byte, images.dtype);
    }
}
